//! Tag references: where a tag is named (segment filters and trigger
//! actions, script string literals, webhook tag patterns), and renames,
//! merges and deletions that keep every segment and webhook meaning what it
//! meant.
//!
//! A rename or merge rewrites the filters that name the old tags (through
//! the filter's tree and its canonical printer) and the trigger actions, in
//! the transaction of the rename, before segments are re-evaluated: a
//! segment that followed its tag keeps its members, and no trigger fires
//! because of the rename. Scripts are code and are never rewritten: the
//! result names them and the log warns. A deletion that would leave a
//! segment naming a deleted tag is refused unless forced.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{script, segment, tag, webhook};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};

use crate::automation::scripts::{self, Scripts};
use crate::db::begin_write;
use crate::error::carry;
use crate::segments::SegmentError;
use crate::segments::filter::Filter;
use crate::segments::membership::stored_filter;
use crate::segments::store::{TagActions, actions, stored_actions};
use crate::tagging::assign::{Actor, segments_follow, segments_turn};
use crate::tagging::{delete, merge, rename};
use crate::tags::pattern::TagPattern;
use crate::time::Clock;
use crate::webhooks::{self, store as webhook_store};

/// Where one tag is named.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Segments whose filter names the tag (or a pattern selecting it), or
    /// whose entry or exit actions add or remove it; by name.
    pub segments: Vec<segment::Model>,
    /// Scripts with a string literal that is the tag's name or a pattern
    /// selecting it; by name.
    pub scripts: Vec<script::Model>,
    /// Webhooks with a tag pattern selecting the tag (a webhook without
    /// patterns hears every tag and names none).
    pub webhooks: Vec<webhook::Model>,
}

/// What a rename or merge did to the references of the old tags.
#[derive(Debug, Clone)]
pub struct TagRewrite {
    /// The renamed tag, or the merge's target.
    pub tag: tag::Model,
    /// Segments whose filter or actions now name the new tag.
    pub rewritten: Vec<segment::Model>,
    /// Patterns kept as written that selected an old name and do not select
    /// the new one, with their segment: members may leave because of them.
    pub kept: Vec<(segment::Model, String)>,
    /// Scripts naming an old tag in a string literal: never rewritten.
    pub scripts: Vec<script::Model>,
    /// Webhooks whose tag patterns now name the new tag.
    pub webhooks: Vec<webhook::Model>,
}

/// A segment with its filter read once.
struct Loaded {
    segment: segment::Model,
    filter: Option<Filter>,
    on_entry: TagActions<i64>,
    on_exit: TagActions<i64>,
}

impl Loaded {
    fn acts_on(&self, tag: &tag::Model) -> bool {
        let acts = |a: &TagActions<i64>| a.add.contains(&tag.id) || a.remove.contains(&tag.id);
        acts(&self.on_entry) || acts(&self.on_exit)
    }

    /// Whether the filter selects the tag or an action names it.
    fn names(&self, tag: &tag::Model) -> bool {
        self.filter.as_ref().is_some_and(|f| f.names_tag(&tag.name)) || self.acts_on(tag)
    }

    /// Whether deleting the tag would leave part of this segment naming
    /// nothing: a pattern naming the tag itself, or an action.
    fn depends_on(&self, tag: &tag::Model) -> bool {
        self.filter
            .as_ref()
            .is_some_and(|f| f.names_tag_itself(&tag.name))
            || self.acts_on(tag)
    }
}

async fn load_segments(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<Loaded>, SegmentError> {
    let all = segment::Entity::find()
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(segment::Column::Name)
        .all(db)
        .await?;
    Ok(all
        .into_iter()
        .map(|segment| Loaded {
            filter: stored_filter(&segment),
            on_entry: actions(&segment.on_entry),
            on_exit: actions(&segment.on_exit),
            segment,
        })
        .collect())
}

/// Each script of the workspace with its string literals (a script that
/// no longer compiles names nothing).
async fn script_literals(
    db: &impl ConnectionTrait,
    compiled: &Scripts,
    workspace_id: i64,
) -> Result<Vec<(script::Model, Vec<String>)>, SegmentError> {
    let all = scripts::list(db, workspace_id)
        .await
        .map_err(|e| carry(e, SegmentError::Invalid))?;
    Ok(all
        .into_iter()
        .map(|script| {
            let literals = compiled
                .compiled(&script)
                .map(|c| c.string_literals())
                .unwrap_or_default();
            (script, literals)
        })
        .collect())
}

/// The workspace's webhooks with their tag patterns.
async fn webhook_patterns(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<(webhook::Model, Vec<String>)>, SegmentError> {
    let all = webhook_store::list(db, workspace_id)
        .await
        .map_err(|e| carry(e, SegmentError::Invalid))?;
    Ok(all
        .into_iter()
        .map(|hook| {
            let patterns = webhooks::tags_of(&hook);
            (hook, patterns)
        })
        .collect())
}

fn literal_selects(literals: &[String], name: &str) -> bool {
    literals
        .iter()
        .any(|literal| TagPattern::parse(literal).matches(name))
}

/// Where each of `tags` is named, by tag id: four statements whatever the
/// number of tags (tags, segments, scripts, webhooks; compiled scripts come
/// from the cache).
pub async fn usage(
    db: &impl ConnectionTrait,
    compiled: &Scripts,
    workspace_id: i64,
    tags: &[tag::Model],
) -> Result<HashMap<i64, Usage>, SegmentError> {
    if tags.is_empty() {
        return Ok(HashMap::new());
    }
    let segments = load_segments(db, workspace_id).await?;
    let scripts = script_literals(db, compiled, workspace_id).await?;
    let hooks = webhook_patterns(db, workspace_id).await?;
    Ok(tags
        .iter()
        .map(|tag| {
            let usage = Usage {
                segments: segments
                    .iter()
                    .filter(|s| s.names(tag))
                    .map(|s| s.segment.clone())
                    .collect(),
                scripts: scripts
                    .iter()
                    .filter(|(_, literals)| literal_selects(literals, &tag.name))
                    .map(|(script, _)| script.clone())
                    .collect(),
                webhooks: hooks
                    .iter()
                    .filter(|(_, patterns)| literal_selects(patterns, &tag.name))
                    .map(|(hook, _)| hook.clone())
                    .collect(),
            };
            (tag.id, usage)
        })
        .collect())
}

/// Renames a tag (and its descendants) and every reference to it, then
/// brings tracked segments up to date, in one transaction.
pub async fn rename_tag(
    db: &DatabaseConnection,
    compiled: &Scripts,
    workspace_id: i64,
    old: &str,
    new: &str,
    clock: &Clock,
) -> Result<TagRewrite, SegmentError> {
    with_rewrites(db, compiled, workspace_id, clock, async |txn| {
        let renamed = rename::rename(txn, workspace_id, old, new).await?;
        Ok(Renaming {
            tag: renamed.tag,
            renames: renamed.names,
            moved: Vec::new(),
        })
    })
    .await
}

/// Merges tags into one and moves every reference to the target, then
/// brings tracked segments up to date, in one transaction.
pub async fn merge_tags(
    db: &DatabaseConnection,
    compiled: &Scripts,
    workspace_id: i64,
    names: &[String],
    into: &str,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<TagRewrite, SegmentError> {
    with_rewrites(db, compiled, workspace_id, clock, async |txn| {
        let merged = merge::merge(txn, workspace_id, names, into, actor).await?;
        let target = merged.target;
        Ok(Renaming {
            renames: merged
                .sources
                .iter()
                .map(|s| (s.name.clone(), target.name.clone()))
                .collect(),
            moved: merged
                .sources
                .iter()
                .map(|s| (s.id, Some(target.id)))
                .collect(),
            tag: target,
        })
    })
    .await
}

/// What a rename or merge changed: the tag it leaves, the names it replaced
/// (old, new) and the tag ids it replaced (from, to).
struct Renaming {
    tag: tag::Model,
    renames: Vec<(String, String)>,
    moved: Vec<(i64, Option<i64>)>,
}

/// Runs `change` (a rename or a merge) in a write transaction, then, in the
/// same transaction, rewrites the segments' and webhooks' references to the
/// names it replaced and brings tracked segments up to date; after the
/// commit, names the scripts that still say an old name.
async fn with_rewrites(
    db: &DatabaseConnection,
    compiled: &Scripts,
    workspace_id: i64,
    clock: &Clock,
    change: impl AsyncFnOnce(&DatabaseTransaction) -> Result<Renaming, SegmentError>,
) -> Result<TagRewrite, SegmentError> {
    let txn = begin_write(db).await?;
    let tracked = segments_turn(&txn, workspace_id).await?;
    let Renaming {
        tag,
        renames,
        moved,
    } = change(&txn).await?;
    let (rewritten, kept) = rewrite(&txn, workspace_id, &renames, &moved, clock.now()).await?;
    let webhooks = rewrite_webhooks(&txn, workspace_id, &renames, clock.now()).await?;
    segments_follow(&txn, workspace_id, tracked, clock).await?;
    txn.commit().await?;
    let scripts = scripts_naming(db, compiled, workspace_id, &renames).await?;
    Ok(TagRewrite {
        tag,
        rewritten,
        kept,
        scripts,
        webhooks,
    })
}

/// Deletes a tag and its descendants. While a segment or a webhook names one
/// of them (a filter or webhook pattern naming the tag itself, `a` or `a/*`,
/// not one such as `Region: *` that outlives it; or a segment's action) this
/// is a CONFLICT naming them, unless `force`: then the actions drop the
/// deleted tags, and the patterns keep their text and match nothing for
/// those tags.
pub async fn delete_tag(
    db: &DatabaseConnection,
    workspace_id: i64,
    name: &str,
    force: bool,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<(), SegmentError> {
    let txn = begin_write(db).await?;
    let tracked = segments_turn(&txn, workspace_id).await?;
    let doomed = delete::doomed(&txn, workspace_id, name).await?;
    let segments = load_segments(&txn, workspace_id).await?;
    let users: Vec<&Loaded> = segments
        .iter()
        .filter(|s| doomed.iter().any(|tag| s.depends_on(tag)))
        .collect();
    let hooks: Vec<webhook::Model> = webhook_patterns(&txn, workspace_id)
        .await?
        .into_iter()
        .filter(|(_, patterns)| {
            patterns.iter().any(|p| {
                doomed
                    .iter()
                    .any(|tag| crate::tags::pattern::names_tag(p, &tag.name))
            })
        })
        .map(|(hook, _)| hook)
        .collect();
    if (!users.is_empty() || !hooks.is_empty()) && !force {
        let mut named: Vec<String> = users
            .iter()
            .map(|s| format!("segment {:?}", s.segment.name))
            .collect();
        named.extend(hooks.iter().map(|h| format!("webhook {}", h.url)));
        return Err(SegmentError::Conflict(format!(
            "tag {name:?} is used by {}: change {} first, or delete with force: true",
            named.join(", "),
            if named.len() == 1 { "it" } else { "them" },
        )));
    }
    let dropped: Vec<(i64, Option<i64>)> = doomed.iter().map(|t| (t.id, None)).collect();
    for loaded in users {
        move_actions(&txn, loaded, None, &dropped, clock.now()).await?;
    }
    delete::delete(&txn, workspace_id, doomed, actor).await?;
    segments_follow(&txn, workspace_id, tracked, clock).await?;
    txn.commit().await?;
    Ok(())
}

/// Rewrites, in every segment of the workspace, the filters naming the
/// `renames` (old, new) and the actions naming the tag ids `moved` (from,
/// to). Returns the segments changed and the patterns kept.
async fn rewrite(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    renames: &[(String, String)],
    moved: &[(i64, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<(Vec<segment::Model>, Vec<(segment::Model, String)>), SegmentError> {
    let mut rewritten = Vec::new();
    let mut kept = Vec::new();
    if renames.is_empty() {
        return Ok((rewritten, kept));
    }
    for loaded in load_segments(txn, workspace_id).await? {
        let result = loaded.filter.as_ref().map(|f| f.rename_tags(renames));
        let new_filter = result.as_ref().and_then(|r| r.filter.as_ref());
        if let Some(result) = &result {
            for pattern in &result.kept {
                kept.push((loaded.segment.clone(), pattern.clone()));
            }
        }
        if let Some(updated) = move_actions(txn, &loaded, new_filter, moved, now).await? {
            rewritten.push(updated);
        }
    }
    Ok((rewritten, kept))
}

/// Rewrites the tag patterns of the workspace's webhooks naming the
/// `renames` (old, new) exactly or as `old/*`; returns the webhooks changed.
/// Other patterns stay as written.
async fn rewrite_webhooks(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    renames: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Vec<webhook::Model>, SegmentError> {
    let mut changed = Vec::new();
    for (hook, patterns) in webhook_patterns(txn, workspace_id).await? {
        let mut rewritten: Vec<String> = Vec::with_capacity(patterns.len());
        for pattern in &patterns {
            let new = renames.iter().find_map(|(old, new)| {
                if pattern == old {
                    Some(new.clone())
                } else if pattern.strip_suffix("/*") == Some(old.as_str()) {
                    Some(format!("{new}/*"))
                } else {
                    None
                }
            });
            let new = new.unwrap_or_else(|| pattern.clone());
            if !rewritten.contains(&new) {
                rewritten.push(new);
            }
        }
        if rewritten != patterns {
            let mut active = hook.into_active_model();
            active.tags = Set(serde_json::json!(rewritten));
            active.updated_at = Set(now);
            changed.push(active.update(txn).await?);
        }
    }
    Ok(changed)
}

/// Saves `loaded` with `filter` (when given) and its actions with the tag
/// ids `moved` (from, to; `None` drops the id); `None` when nothing changed.
async fn move_actions(
    txn: &DatabaseTransaction,
    loaded: &Loaded,
    filter: Option<&Filter>,
    moved: &[(i64, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<Option<segment::Model>, SegmentError> {
    let map = |ids: &[i64]| -> Vec<i64> {
        let mut out: Vec<i64> = Vec::with_capacity(ids.len());
        for id in ids {
            let id = match moved.iter().find(|(from, _)| from == id) {
                Some((_, to)) => *to,
                None => Some(*id),
            };
            if let Some(id) = id
                && !out.contains(&id)
            {
                out.push(id);
            }
        }
        out
    };
    let remap = |a: &TagActions<i64>| {
        let add = map(&a.add);
        // A tag both added and removed after a merge: adding wins.
        let remove = map(&a.remove)
            .into_iter()
            .filter(|id| !add.contains(id))
            .collect();
        TagActions { add, remove }
    };
    let on_entry = remap(&loaded.on_entry);
    let on_exit = remap(&loaded.on_exit);
    let actions_changed = on_entry != loaded.on_entry || on_exit != loaded.on_exit;
    if filter.is_none() && !actions_changed {
        return Ok(None);
    }
    let mut active = loaded.segment.clone().into_active_model();
    if let Some(filter) = filter {
        active.filter = Set(filter.to_string());
    }
    if actions_changed {
        active.on_entry = Set(stored_actions(&on_entry));
        active.on_exit = Set(stored_actions(&on_exit));
    }
    active.updated_at = Set(now);
    Ok(Some(active.update(txn).await?))
}

/// The scripts naming one of the old names of `renames`, with a warning
/// in the server log for each: scripts are never rewritten.
async fn scripts_naming(
    db: &impl ConnectionTrait,
    compiled: &Scripts,
    workspace_id: i64,
    renames: &[(String, String)],
) -> Result<Vec<script::Model>, SegmentError> {
    let mut naming = Vec::new();
    for (script, literals) in script_literals(db, compiled, workspace_id).await? {
        if let Some((old, new)) = renames
            .iter()
            .find(|(old, _)| literal_selects(&literals, old))
        {
            tracing::warn!(
                workspace_id,
                script = %script.name,
                old = %old,
                new = %new,
                "a renamed or merged tag is named in a script, which is not rewritten: edit the script"
            );
            naming.push(script);
        }
    }
    Ok(naming)
}

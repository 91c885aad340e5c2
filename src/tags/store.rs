//! Tag rows: finding, creating on first use (with their implicit parents),
//! and the workspace's naming rules.

use std::collections::{BTreeSet, HashMap};

use entity::{tag, workspace};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select, Set};

use super::TagError;
use super::name::{TagName, TagRules};
use crate::db::read_many_in_workspace;
use crate::time::now;

/// The naming rules of a workspace.
pub async fn rules(db: &impl ConnectionTrait, workspace_id: i64) -> Result<TagRules, TagError> {
    let ws = workspace::Entity::find_by_id(workspace_id)
        .one(db)
        .await?
        .ok_or_else(|| TagError::Invalid("unknown workspace".into()))?;
    Ok(TagRules {
        lowercase: ws.lowercase_tags,
        max_depth: ws.max_tag_depth.max(1) as usize,
    })
}

/// Parses names under the workspace's rules; the error names each bad one.
pub async fn parse_names<S: AsRef<str>>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    raw: &[S],
) -> Result<Vec<TagName>, TagError> {
    let rules = rules(db, workspace_id).await?;
    super::name::parse_all(raw, rules).map_err(TagError::InvalidNames)
}

/// The live tag with this exact name.
pub async fn find_live(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<Option<tag::Model>, TagError> {
    Ok(live_named(workspace_id, name).one(db).await?)
}

/// The select of [`find_live`].
pub(crate) fn live_named(workspace_id: i64, name: &str) -> Select<tag::Entity> {
    tag::Entity::find()
        .filter(tag::Column::WorkspaceId.eq(workspace_id))
        .filter(tag::Column::Name.eq(name.trim()))
        .filter(tag::Column::DeletedAt.is_null())
}

/// The live tag with this exact name, or NOT_FOUND.
pub async fn get_live(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<tag::Model, TagError> {
    find_live(db, workspace_id, name)
        .await?
        .ok_or_else(|| TagError::NotFound(name.trim().to_owned()))
}

/// Live tags with these names.
pub async fn find_live_by_names(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    names: &[String],
) -> Result<Vec<tag::Model>, TagError> {
    // In chunks: one statement for any number of names would pass SQLite's
    // limit on bound values.
    let mut found = Vec::new();
    for chunk in names.chunks(1_000) {
        found.extend(
            tag::Entity::find()
                .filter(tag::Column::WorkspaceId.eq(workspace_id))
                .filter(tag::Column::Name.is_in(chunk.iter().cloned()))
                .filter(tag::Column::DeletedAt.is_null())
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// Tags by id, deleted ones included (history refers to them).
pub async fn find_many(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<tag::Model>, TagError> {
    Ok(read_many_in_workspace::<_, tag::Entity>(db, workspace_id, ids).await?)
}

/// Returns the live tags with these names, creating missing ones (and their
/// implicit parents, linked by `parent_id`). Safe under concurrency: an
/// insert that loses a race is ignored and the winner's row is used.
pub async fn ensure(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    names: &[TagName],
) -> Result<Vec<tag::Model>, TagError> {
    // A set, not a list searched for each name: many names cost n log n, not n².
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for name in names {
        wanted.extend(name.ancestors());
        wanted.insert(name.as_str().to_owned());
    }
    // Created in name order (a parent's name is a prefix of its children's,
    // so parents still come first): two requests creating the same new tags
    // wait for each other's inserts in one order, never in a cycle.
    let wanted: Vec<String> = wanted.into_iter().collect();
    let mut by_name: HashMap<String, tag::Model> = find_live_by_names(db, workspace_id, &wanted)
        .await?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    // Ancestors come before their descendants in `wanted`, so a parent's id is known.
    for name in &wanted {
        if by_name.contains_key(name) {
            continue;
        }
        let parsed = TagName::parse(
            name,
            TagRules {
                lowercase: false,
                max_depth: usize::MAX,
            },
        )
        .map_err(|e| TagError::InvalidNames(format!("tag {name:?} {e}")))?;
        let parent_id = parsed
            .parent()
            .and_then(|parent| by_name.get(&parent).map(|p| p.id));
        let (key, value) = match parsed.key_value() {
            Some((k, v)) => (Some(k.to_owned()), Some(v.to_owned())),
            None => (None, None),
        };
        let row = tag::ActiveModel {
            workspace_id: Set(workspace_id),
            name: Set(name.clone()),
            key: Set(key),
            value: Set(value),
            parent_id: Set(parent_id),
            description: Set(None),
            created_at: Set(now()),
            deleted_at: Set(None),
            ..Default::default()
        };
        tag::Entity::insert(row)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
        let created = find_live(db, workspace_id, name)
            .await?
            .ok_or_else(|| TagError::NotFound(name.clone()))?;
        by_name.insert(name.clone(), created);
    }
    Ok(names
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).cloned())
        .collect())
}

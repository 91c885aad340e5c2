//! Tagging: one subject (`addTags`, `removeTags`) or many by id (bulk).

use entity::tag;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

use crate::db::begin_write;
use crate::segments::membership;
use crate::tags::name::TagName;
use crate::tags::write::{self, TagWrite, Target, subject_table};
use crate::tags::{Cause, Op, Source, TagError, store};
use crate::time::Clock;
use crate::vocab::SubjectKind;

/// Most ids one bulk request may name.
pub const MAX_BULK_IDS: usize = 10_000;

/// Who makes a change, and why.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub source: Source,
    /// The API key, script or segment name.
    pub name: Option<&'a str>,
    pub cause: Cause,
    pub depth: i32,
}

/// Counts of a bulk operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Subjects the target selected.
    pub matched: u64,
    /// Assignments actually created or removed.
    pub changed: u64,
}

/// Adds or removes tags on many subjects, in one transaction (all or
/// nothing). Tags are created on first use when adding; removing a tag that
/// does not exist changes nothing.
pub async fn apply_to_targets(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    targets: &[(SubjectKind, Target)],
    names: &[TagName],
    op: Op,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<BulkOutcome, TagError> {
    let tags = match op {
        Op::Added => store::ensure(txn, workspace_id, names).await?,
        Op::Removed => {
            let names: Vec<String> = names.iter().map(|n| n.as_str().to_owned()).collect();
            store::find_live_by_names(txn, workspace_id, &names).await?
        }
    };
    apply_tags(txn, workspace_id, targets, &tags, op, actor, clock).await
}

/// Adds or removes these tags on the targets, then re-evaluates the tracked
/// segments of the subjects that changed (entries and exits are announced in
/// the same transaction).
pub async fn apply_tags(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    targets: &[(SubjectKind, Target)],
    tags: &[tag::Model],
    op: Op,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<BulkOutcome, TagError> {
    let floor = segments_floor(txn, workspace_id).await?;
    // Every tag of this change is locked first, in one order for all writers.
    let tag_ids: Vec<i64> = tags.iter().map(|t| t.id).collect();
    write::lock_tags(txn, &tag_ids).await?;
    let mut outcome = BulkOutcome::default();
    for (kind, target) in targets {
        outcome.matched += count_target(txn, workspace_id, *kind, target).await?;
        for tag in tags {
            let tag_write = TagWrite {
                workspace_id,
                op,
                tag_id: tag.id,
                kind: *kind,
                source: actor.source,
                actor: actor.name,
                cause: actor.cause,
                depth: actor.depth,
            };
            outcome.changed += write::apply_locked(txn, &tag_write, target).await?;
        }
    }
    segments_after(
        txn,
        workspace_id,
        floor,
        outcome.changed,
        actor.depth,
        clock,
    )
    .await?;
    Ok(outcome)
}

/// Adds many tags at once, each to its own subjects of one kind: `pairs`
/// of (tag, subject id), through [`write::add_pairs`] (three statements
/// for all of them, four when some subjects are new and some not), then
/// re-evaluates the tracked segments of the subjects that changed, as
/// [`apply_tags`] does. At most [`membership::MAX_IN_MEMORY`] distinct
/// subjects per call keep that re-evaluation in memory. Returns how many
/// assignments were created.
pub async fn add_pairs(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: SubjectKind,
    pairs: &write::Pairs,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<u64, TagError> {
    let floor = segments_floor(txn, workspace_id).await?;
    write::lock_tags(txn, &pairs.tag_ids()).await?;
    let origin = write::Origin {
        workspace_id,
        kind,
        source: actor.source,
        actor: actor.name,
        cause: actor.cause,
        depth: actor.depth,
    };
    let changed = write::add_pairs(txn, &origin, pairs).await?;
    segments_after(txn, workspace_id, floor, changed, actor.depth, clock).await?;
    Ok(changed)
}

/// Before a tag write: when the workspace tracks segments, takes its turn
/// and returns the history floor the re-evaluation after the write starts
/// from.
async fn segments_floor(
    txn: &DatabaseTransaction,
    workspace_id: i64,
) -> Result<Option<i64>, TagError> {
    if !membership::has_tracked(txn, workspace_id).await? {
        return Ok(None);
    }
    membership::serialize(txn, workspace_id).await?;
    Ok(Some(membership::tag_change_floor(txn).await?))
}

/// After a tag write that changed `changed` assignments: re-evaluates the
/// tracked segments of the subjects whose tags changed above `floor`.
async fn segments_after(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    floor: Option<i64>,
    changed: u64,
    depth: i32,
    clock: &Clock,
) -> Result<(), TagError> {
    if let (Some(floor), true) = (floor, changed > 0) {
        membership::after_tag_writes(txn, workspace_id, floor, depth, clock.now()).await?;
    }
    Ok(())
}

/// How many subjects of the workspace a target selects.
async fn count_target(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: SubjectKind,
    target: &Target,
) -> Result<u64, TagError> {
    let condition = match target {
        Target::Ids(ids) if ids.is_empty() => return Ok(0),
        Target::Ids(ids) => Expr::col(("s", "id")).is_in(ids.iter().copied()),
        Target::Select(select) => Expr::col(("s", "id")).in_subquery((**select).clone()),
    };
    let query = Query::select()
        .expr(Expr::col(("s", "id")).count())
        .from_as(subject_table(kind), "s")
        .and_where(Expr::col(("s", "workspace_id")).eq(workspace_id))
        .and_where(condition)
        .to_owned();
    let count: i64 = match txn.query_one(&query).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(count as u64)
}

/// Adds or removes tags on one subject, which must exist in the workspace.
pub async fn tag_one(
    db: &DatabaseConnection,
    workspace_id: i64,
    (kind, subject_id): (SubjectKind, i64),
    names: &[String],
    op: Op,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<(), TagError> {
    // Parsed before the write transaction, to keep it short.
    let names = store::parse_names(db, workspace_id, names).await?;
    let txn = begin_write(db).await?;
    let targets = [(kind, Target::Ids(vec![subject_id]))];
    let outcome = apply_to_targets(&txn, workspace_id, &targets, &names, op, actor, clock).await?;
    if outcome.matched == 0 {
        return Err(TagError::SubjectNotFound(match kind {
            SubjectKind::Account => "account",
            SubjectKind::User => "user",
        }));
    }
    txn.commit().await?;
    Ok(())
}

/// Adds or removes tags on subjects named by id (accounts and users may mix).
pub async fn bulk_by_ids(
    db: &DatabaseConnection,
    workspace_id: i64,
    ids: &[(SubjectKind, i64)],
    names: &[String],
    op: Op,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<BulkOutcome, TagError> {
    if ids.len() > MAX_BULK_IDS {
        return Err(TagError::TooMany(format!(
            "a bulk target holds at most {MAX_BULK_IDS} ids, not {}",
            ids.len()
        )));
    }
    if names.is_empty() {
        return Err(TagError::Invalid("name at least one tag".into()));
    }
    let mut accounts: Vec<i64> = Vec::new();
    let mut users: Vec<i64> = Vec::new();
    for (kind, id) in ids {
        match kind {
            SubjectKind::Account => accounts.push(*id),
            SubjectKind::User => users.push(*id),
        }
    }
    for list in [&mut accounts, &mut users] {
        list.sort_unstable();
        list.dedup();
    }
    let targets = [
        (SubjectKind::Account, Target::Ids(accounts)),
        (SubjectKind::User, Target::Ids(users)),
    ];
    bulk(db, workspace_id, &targets, names, op, actor, clock).await
}

/// Adds or removes tags on the subjects the targets select (a query: a
/// segment's or a filter's members), in one transaction.
pub async fn bulk(
    db: &DatabaseConnection,
    workspace_id: i64,
    targets: &[(SubjectKind, Target)],
    names: &[String],
    op: Op,
    actor: Actor<'_>,
    clock: &Clock,
) -> Result<BulkOutcome, TagError> {
    if names.is_empty() {
        return Err(TagError::Invalid("name at least one tag".into()));
    }
    let names = store::parse_names(db, workspace_id, names).await?;
    let txn = begin_write(db).await?;
    let outcome = apply_to_targets(&txn, workspace_id, targets, &names, op, actor, clock).await?;
    txn.commit().await?;
    Ok(outcome)
}

/// Before a change that renames, merges or deletes tags: takes the
/// workspace's turn at segment membership (PostgreSQL), before any tag lock.
/// Returns whether the workspace has tracked segments.
pub async fn segments_turn(txn: &DatabaseTransaction, workspace_id: i64) -> Result<bool, TagError> {
    let tracked = membership::has_tracked(txn, workspace_id).await?;
    if tracked {
        membership::serialize(txn, workspace_id).await?;
    }
    Ok(tracked)
}

/// After such a change: tag names changed under many subjects at once, so
/// every tracked segment is brought up to date (with SQL), announcing entries
/// and exits.
pub async fn segments_follow(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    tracked: bool,
    clock: &Clock,
) -> Result<(), TagError> {
    if tracked {
        membership::resync_all(txn, workspace_id, membership::Reason::Tags, 0, clock.now()).await?;
    }
    Ok(())
}

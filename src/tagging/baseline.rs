//! Baselining a segment (Totango's word): its entry actions applied to its
//! current members, once. Here, above both, because it is segments writing tags.

use sea_orm::DatabaseConnection;

use super::assign::{Actor, BulkOutcome, apply_tags};
use crate::db::begin_write;
use crate::segments::SegmentError;
use crate::segments::membership::{self, Segments};
use crate::segments::store::{actions, count, find, members};
use crate::tags::store as tag_store;
use crate::tags::write::Target;
use crate::vocab::{Cause, Op, Source};

/// Applies a segment's entry actions to every current member now (source
/// TRIGGER, the segment's name as actor), and records the members as its
/// stored membership without announcing them.
pub async fn baseline(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
    clock: &crate::time::Clock,
) -> Result<BulkOutcome, SegmentError> {
    let txn = begin_write(db).await?;
    let current = find(&txn, workspace_id, id)
        .await?
        .ok_or(SegmentError::NotFound("segment"))?;
    let now = clock.now();
    let (kind, members) = members(&txn, workspace_id, &current, now).await?;
    let segments = Segments::load(&txn, workspace_id).await?;
    // The membership first, so the entry actions below do not count as entries.
    if current.tracked {
        membership::resync(&txn, workspace_id, &current, &segments, now, None).await?;
    }
    let actions = actions(&current.on_entry);
    let actor = Actor {
        source: Source::Trigger,
        name: Some(&current.name),
        cause: Cause::None,
        depth: 0,
    };
    let targets = [(kind, Target::Select(Box::new(members.clone())))];
    let mut outcome = BulkOutcome {
        matched: count(&txn, members).await?,
        changed: 0,
    };
    for (op, ids) in [(Op::Added, &actions.add), (Op::Removed, &actions.remove)] {
        let mut tags = tag_store::find_many(&txn, workspace_id, ids).await?;
        tags.retain(|t| t.deleted_at.is_none());
        if !tags.is_empty() {
            outcome.changed += apply_tags(&txn, workspace_id, &targets, &tags, op, actor, clock)
                .await?
                .changed;
        }
    }
    txn.commit().await?;
    Ok(outcome)
}

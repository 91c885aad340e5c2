//! The sweep: segments whose filters read the clock (`now - 30d`,
//! `events(..., 7d)`) change members as time passes, with no change to any
//! subject; a timer re-evaluates their stored membership.

use std::time::Duration;

use entity::segment;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::Notify;

use super::SegmentError;
use super::membership::{self, Reason, Segments};
use crate::db::begin_write;
use crate::time::Clock;

/// Re-evaluates every tracked, time-based segment of every workspace once;
/// returns how many segments it visited. Each segment is its own transaction.
pub async fn sweep_once(db: &DatabaseConnection, clock: &Clock) -> Result<usize, SegmentError> {
    let due: Vec<(i64, i64)> = segment::Entity::find()
        .select_only()
        .column(segment::Column::WorkspaceId)
        .column(segment::Column::Id)
        .filter(segment::Column::Tracked.eq(true))
        .filter(segment::Column::TimeBased.eq(true))
        .into_tuple()
        .all(db)
        .await?;
    for (workspace_id, segment_id) in &due {
        let txn = begin_write(db).await?;
        let segments = Segments::load(&txn, *workspace_id).await?;
        let Some(segment) = segments
            .all
            .iter()
            .find(|s| s.id == *segment_id && s.tracked)
        else {
            continue; // deleted or untracked meanwhile
        };
        membership::resync(
            &txn,
            *workspace_id,
            segment,
            &segments,
            clock.now(),
            Some((Reason::Time, 0)),
        )
        .await?;
        txn.commit().await?;
    }
    Ok(due.len())
}

/// Sweeps every `every` until `shutdown` resolves, waking the worker after
/// each sweep (entries and exits are events for it).
pub async fn run(
    db: DatabaseConnection,
    clock: Clock,
    every: Duration,
    wake: std::sync::Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match sweep_once(&db, &clock).await {
            Ok(0) => {}
            Ok(_) => wake.notify_one(),
            Err(e) => tracing::error!(error = %e, "segment sweep failed"),
        }
    }
}

//! The outbox of automation events: writing, claiming, completing, retrying.
//!
//! A leaf below the domains: the lower ones (the tag write path, segment
//! membership) publish events here, in the transaction of the change they
//! announce, and `automation`, above them, consumes them. A worker claims the oldest due
//! event whose subject has no earlier unfinished event (so one subject's
//! events run in order), under a lease: a worker that dies leaves its event
//! `running` with an expired lease, and the next claim takes it again.
//! On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so several
//! servers share the work without waiting on each other.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::automation_event;
use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait, InsertStatement, LockBehavior, LockType, Order, Query,
    SelectStatement, SimpleExpr,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, FromQueryResult,
};

use crate::db::begin_write_first;
use crate::time::now;
use crate::vocab::{EventKind, EventStatus};

/// How long a claim lasts before another worker may take the event again,
/// unless the settings say otherwise (`--automation-lease-ms`).
pub const LEASE: Duration = Duration::from_secs(60);

/// The PostgreSQL channel on which writes to the queues (automation
/// events, webhook deliveries) announce themselves, inside their
/// transaction: every process listening (`app::wakeup`) hears of them at
/// commit. (The tag write path needs no second announcement: the change
/// feed's channel, `tags::feed::CHANNEL`, is heard too.)
pub const CHANNEL: &str = "tagsmith_outbox";

/// A queue whose new rows a worker or a dispatcher waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// `automation_events`, for the automation worker.
    Automation,
    /// `webhook_deliveries`, for the webhook dispatcher.
    Webhooks,
}

impl Queue {
    /// The payload of its announcement.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Automation => "automation",
            Queue::Webhooks => "webhooks",
        }
    }

    /// The queue an announcement's payload names.
    pub fn parse(payload: &str) -> Option<Self> {
        [Queue::Automation, Queue::Webhooks]
            .into_iter()
            .find(|q| q.as_str() == payload)
    }
}

/// Announces new rows of `queue` to every process listening (PostgreSQL
/// only; on SQLite the listeners poll), inside the writer's transaction:
/// delivered at commit, not at all on a rollback.
pub async fn announce(db: &impl ConnectionTrait, queue: Queue) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let notify = Query::select()
        .expr(
            sea_orm::sea_query::Func::cust("pg_notify")
                .arg(Expr::val(CHANNEL))
                .arg(Expr::val(queue.as_str())),
        )
        .to_owned();
    db.query_one(&notify).await?;
    Ok(())
}

/// Writes the events a query selects into the outbox, pending and due now.
/// The query's columns, in order: workspace_id, kind, subject_kind,
/// subject_id, the tag or segment id (in the column `about`: `TagId` or
/// `SegmentId`), change_id, depth, cause_id. (The tag write path and
/// segment membership write their events this way, set-based.)
pub async fn enqueue_selected(
    db: &impl ConnectionTrait,
    about: automation_event::Column,
    events: SelectStatement,
) -> Result<(), DbErr> {
    db.execute(&enqueue_statement(about, events)?).await?;
    Ok(())
}

/// The insert of [`enqueue_selected`], for a caller that runs it as part
/// of a larger statement.
pub fn enqueue_statement(
    about: automation_event::Column,
    mut events: SelectStatement,
) -> Result<InsertStatement, DbErr> {
    let at = now();
    events
        .expr(Expr::val(EventStatus::Pending))
        .expr(Expr::val(0))
        .expr(Expr::val(at))
        .expr(Expr::val(at));
    Ok(Query::insert()
        .into_table(automation_event::Entity)
        .columns([
            automation_event::Column::WorkspaceId,
            automation_event::Column::Kind,
            automation_event::Column::SubjectKind,
            automation_event::Column::SubjectId,
            about,
            automation_event::Column::ChangeId,
            automation_event::Column::Depth,
            automation_event::Column::CauseId,
            automation_event::Column::Status,
            automation_event::Column::Attempts,
            automation_event::Column::RunAt,
            automation_event::Column::CreatedAt,
        ])
        .select_from(events)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned())
}

/// Claims the next due event, if any (see [`claim_batch`]).
pub async fn claim(db: &DatabaseConnection) -> Result<Option<automation_event::Model>, DbErr> {
    Ok(claim_batch(db, 1, LEASE).await?.pop())
}

/// Claims up to `max` due events, oldest first, at most one per subject (a
/// subject's next event waits until its earlier one is finished): marks
/// them running under a lease and counts the attempt.
pub async fn claim_batch(
    db: &DatabaseConnection,
    max: u64,
    lease: Duration,
) -> Result<Vec<automation_event::Model>, DbErr> {
    let txn = begin_write_first(db).await?;
    let claimed = claim_in(&txn, max, lease, Expired::LookedFor).await?;
    txn.commit().await?;
    Ok(claimed)
}

/// Whether a claim looks for events whose worker died (their lease ran
/// out) before the pending ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    LookedFor,
    /// Not this time: a busy worker looks now and then (one statement
    /// less per batch), and on every claim of its own ([`claim_batch`]).
    Skipped,
}

/// [`claim_batch`] in the caller's write transaction: the worker claims its
/// next batch in the transaction that finishes the last one, one write
/// turn (and one commit) where two would be.
pub async fn claim_in(
    txn: &DatabaseTransaction,
    max: u64,
    lease: Duration,
    expired: Expired,
) -> Result<Vec<automation_event::Model>, DbErr> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Plan the claim for the outbox as it is now. A generic plan cached
        // while the outbox was empty (the statement is prepared once per
        // connection) rescans every open event for each candidate: minutes,
        // not milliseconds, once a bulk change has queued 100,000 events.
        // (For the rest of the transaction: the claim is its last step.)
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
    }
    let at = now();
    let classes: &[Claimable] = match expired {
        Expired::LookedFor => &[Claimable::Expired, Claimable::Pending],
        Expired::Skipped => &[Claimable::Pending],
    };
    let ids = due(txn, at, max, classes).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let lease_end = at + chrono::Duration::from_std(lease).unwrap_or_default();
    let mut claim = Query::update();
    claim
        .table(automation_event::Entity)
        .value(automation_event::Column::Status, EventStatus::Running)
        .value(automation_event::Column::LockedUntil, lease_end)
        .value(
            automation_event::Column::Attempts,
            Expr::col(automation_event::Column::Attempts).add(1),
        )
        .returning_all();
    if txn.get_database_backend() == DbBackend::Postgres {
        // Locks the candidates, skipping those another worker is claiming,
        // and keeps those whose latest version is still claimable (a worker
        // may have claimed or finished one since this transaction's earlier
        // reads: the lock reads the row again). On SQLite this transaction
        // is the one writer: nothing changed since.
        let still_claimable = classes
            .iter()
            .fold(Condition::any(), |any, class| any.add(class.condition(at)));
        let locked = Query::select()
            .column(automation_event::Column::Id)
            .from(automation_event::Entity)
            .and_where(Expr::col(automation_event::Column::Id).is_in(ids))
            .cond_where(still_claimable)
            .order_by(automation_event::Column::Id, Order::Asc)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        claim.and_where(Expr::col(automation_event::Column::Id).in_subquery(locked));
    } else {
        claim.and_where(Expr::col(automation_event::Column::Id).is_in(ids));
    }
    let mut claimed = txn
        .query_all(&claim)
        .await?
        .iter()
        .map(|row| automation_event::Model::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|e| e.id);
    Ok(claimed)
}

/// Gives claimed events back untouched (a worker stopping before it
/// started them): pending again, the attempt uncounted, so the next worker
/// takes them at once instead of after the lease. Only claims still this
/// worker's (see [`still_claimed`]).
pub async fn release(
    db: &DatabaseConnection,
    claimed: &[automation_event::Model],
) -> Result<(), DbErr> {
    if claimed.is_empty() {
        return Ok(());
    }
    let txn = begin_write_first(db).await?;
    for event in claimed {
        let release = Query::update()
            .table(automation_event::Entity)
            .value(automation_event::Column::Status, EventStatus::Pending)
            .value(
                automation_event::Column::LockedUntil,
                Option::<DateTime<Utc>>::None,
            )
            .value(automation_event::Column::Attempts, event.attempts - 1)
            .and_where(still_ours(event))
            .to_owned();
        txn.execute(&release).await?;
    }
    txn.commit().await
}

/// The ids of the oldest claimable events: pending and due, or running with
/// an expired lease; each the earliest unfinished event of its subject.
///
/// Plain steps instead of one anti-join over the whole outbox, so that no
/// plan can make the claim slow however the outbox grows: a page of
/// candidates in id order (on PostgreSQL, pending ones from a partial index
/// that holds only them); those of the page that are their subject's
/// earliest unfinished event, by id with one index probe each (on
/// PostgreSQL the claim's update then locks them, skipping rows another
/// worker is claiming, and checks each locked row's latest version). The
/// next page follows when candidates wait behind earlier events of their
/// subjects. (The
/// anti-join, planned on statistics that lagged behind the outbox, walked
/// every finished event on each claim.)
async fn due(
    txn: &DatabaseTransaction,
    at: DateTime<Utc>,
    max: u64,
    classes: &[Claimable],
) -> Result<Vec<i64>, DbErr> {
    let mut ids = Vec::new();
    // A dead worker's events first: each is the oldest of its subject.
    for &class in classes {
        let mut after = 0_i64;
        loop {
            let room = max.saturating_sub(ids.len() as u64);
            if room == 0 {
                return Ok(ids);
            }
            let page_size = Ord::max(room * 4, 64);
            let query = Query::select()
                .column(automation_event::Column::Id)
                .from(automation_event::Entity)
                .and_where(class.condition(at))
                .and_where(Expr::col(automation_event::Column::Id).gt(after))
                .order_by(automation_event::Column::Id, Order::Asc)
                .limit(page_size)
                .to_owned();
            let page: Vec<i64> = txn
                .query_all(&query)
                .await?
                .iter()
                .map(|row| row.try_get_by_index(0))
                .collect::<Result<_, _>>()?;
            let Some(&last) = page.last() else {
                break;
            };
            after = last;
            let full = page.len() as u64 == page_size;
            ids.extend(first_of_their_subjects(txn, page, room).await?);
            if !full {
                break;
            }
        }
    }
    Ok(ids)
}

/// The two kinds of claimable event.
#[derive(Debug, Clone, Copy)]
enum Claimable {
    /// Running under a lease that has run out: its worker died.
    Expired,
    /// Pending and due.
    Pending,
}

impl Claimable {
    fn condition(self, at: DateTime<Utc>) -> SimpleExpr {
        match self {
            Claimable::Expired => Expr::col(automation_event::Column::Status)
                .eq(EventStatus::Running)
                .and(Expr::col(automation_event::Column::LockedUntil).lt(at)),
            Claimable::Pending => Expr::col(automation_event::Column::Status)
                .eq(EventStatus::Pending)
                .and(Expr::col(automation_event::Column::RunAt).lte(at)),
        }
    }
}

/// Of the events `page`, up to `room` that are the earliest unfinished
/// event of their subject, in id order. Only the ids are searched on (the
/// primary key), and the earliest of each subject is one probe of the
/// partial index on unfinished events.
async fn first_of_their_subjects(
    txn: &DatabaseTransaction,
    page: Vec<i64>,
    room: u64,
) -> Result<Vec<i64>, DbErr> {
    let (e, p) = (Alias::new("e"), Alias::new("p"));
    let earliest = Query::select()
        .expr(Expr::col((p.clone(), automation_event::Column::Id)).min())
        .from_as(automation_event::Entity, p.clone())
        .and_where(
            Expr::col((p.clone(), automation_event::Column::Status))
                .is_in([EventStatus::Pending, EventStatus::Running]),
        )
        .and_where(
            Expr::col((p.clone(), automation_event::Column::SubjectKind))
                .equals((e.clone(), automation_event::Column::SubjectKind)),
        )
        .and_where(
            Expr::col((p.clone(), automation_event::Column::SubjectId))
                .equals((e.clone(), automation_event::Column::SubjectId)),
        )
        .to_owned();
    let query = Query::select()
        .column((e.clone(), automation_event::Column::Id))
        .from_as(automation_event::Entity, e.clone())
        .and_where(Expr::col((e.clone(), automation_event::Column::Id)).is_in(page))
        .and_where(
            Expr::col((e.clone(), automation_event::Column::Id))
                .eq(Expr::SubQuery(None, Box::new(earliest.into()))),
        )
        .order_by((e.clone(), automation_event::Column::Id), Order::Asc)
        .limit(room)
        .to_owned();
    txn.query_all(&query)
        .await?
        .iter()
        .map(|row| row.try_get_by_index(0))
        .collect()
}

/// On PostgreSQL, refreshes the planner's statistics of the outbox. The
/// table can grow by hundreds of thousands of rows between two autovacuum
/// runs (a bulk tagging writes one event per change); with stale figures
/// the planner picks a plan for the claim that scans every pending event
/// per candidate.
pub async fn refresh_statistics(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE automation_events").await?;
    }
    Ok(())
}

/// Of the events a worker claimed, those it still holds, in its
/// transaction: still running under the claim it made (the attempt it
/// counted). A claim whose lease ran out while the worker was busy may have
/// been taken by another worker, which now handles the event: this one
/// must then leave it alone, or the event would be handled twice. On
/// PostgreSQL the rows are locked until the transaction ends, so no one
/// claims them meanwhile (a claim skips locked rows).
pub async fn still_claimed(
    txn: &DatabaseTransaction,
    claimed: &[automation_event::Model],
) -> Result<Vec<i64>, DbErr> {
    let mut select = Query::select()
        .columns([
            automation_event::Column::Id,
            automation_event::Column::Status,
            automation_event::Column::Attempts,
        ])
        .from(automation_event::Entity)
        .and_where(Expr::col(automation_event::Column::Id).is_in(claimed.iter().map(|e| e.id)))
        .order_by(automation_event::Column::Id, Order::Asc)
        .to_owned();
    if txn.get_database_backend() == DbBackend::Postgres {
        select.lock(LockType::Update);
    }
    let mut held = Vec::with_capacity(claimed.len());
    for row in txn.query_all(&select).await? {
        let id: i64 = row.try_get_by_index(0)?;
        let status: EventStatus = row.try_get_by_index(1)?;
        let attempts: i32 = row.try_get_by_index(2)?;
        let ours = claimed
            .iter()
            .any(|e| e.id == id && e.attempts == attempts && status == EventStatus::Running);
        if ours {
            held.push(id);
        }
    }
    Ok(held)
}

/// The row of a claimed event while the claim is still the one that
/// claimed it (running, with the attempt it counted): the condition of the
/// updates that give the event back or record its failure (see
/// [`still_claimed`]).
fn still_ours(claimed: &automation_event::Model) -> SimpleExpr {
    Expr::col(automation_event::Column::Id)
        .eq(claimed.id)
        .and(Expr::col(automation_event::Column::Status).eq(EventStatus::Running))
        .and(Expr::col(automation_event::Column::Attempts).eq(claimed.attempts))
}

/// The outbox as operators watch it (`/metrics`): events not handled yet
/// (pending or running) in every workspace, the age of the oldest of them
/// at `now`, and events kept as failed. One grouped query over the
/// `(status, id)` index.
pub async fn backlog(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<crate::metrics::Backlog, DbErr> {
    let query = Query::select()
        .column(automation_event::Column::Status)
        .expr(Expr::col(automation_event::Column::Id).count())
        .expr(Expr::col(automation_event::Column::CreatedAt).min())
        .from(automation_event::Entity)
        .and_where(Expr::col(automation_event::Column::Status).is_in([
            EventStatus::Pending,
            EventStatus::Running,
            EventStatus::Failed,
        ]))
        .group_by_col(automation_event::Column::Status)
        .to_owned();
    let mut backlog = crate::metrics::Backlog::default();
    let mut oldest: Option<DateTime<Utc>> = None;
    for row in db.query_all(&query).await? {
        let state: EventStatus = row.try_get_by_index(0)?;
        let count: i64 = row.try_get_by_index(1)?;
        let count = u64::try_from(count).unwrap_or(0);
        if state == EventStatus::Failed {
            backlog.failed = count;
            continue;
        }
        backlog.pending += count;
        let first: Option<DateTime<Utc>> = row.try_get_by_index(2)?;
        oldest = match (oldest, first) {
            (Some(a), Some(b)) => Some(Ord::min(a, b)),
            (a, b) => a.or(b),
        };
    }
    if let Some(oldest) = oldest {
        let age = (now - oldest).num_microseconds().unwrap_or(i64::MAX);
        backlog.lag_seconds = Ord::max(age, 0) as f64 / 1e6;
    }
    Ok(backlog)
}

/// Marks events done, in the transaction that applied their effects.
pub async fn complete_many(txn: &DatabaseTransaction, ids: &[i64]) -> Result<(), DbErr> {
    let done = Query::update()
        .table(automation_event::Entity)
        .value(automation_event::Column::Status, EventStatus::Done)
        .value(
            automation_event::Column::LockedUntil,
            Option::<DateTime<Utc>>::None,
        )
        .value(automation_event::Column::LastError, Option::<String>::None)
        .and_where(Expr::col(automation_event::Column::Id).is_in(ids.iter().copied()))
        .to_owned();
    txn.execute(&done).await?;
    Ok(())
}

/// Marks done the pending events of one kind in one workspace, which
/// nothing hears (no script hook, no listener), in the worker's transaction.
pub async fn complete_pending(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: EventKind,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table(automation_event::Entity)
        .value(automation_event::Column::Status, EventStatus::Done)
        .and_where(Expr::col(automation_event::Column::WorkspaceId).eq(workspace_id))
        .and_where(Expr::col(automation_event::Column::Kind).eq(kind))
        .and_where(Expr::col(automation_event::Column::Status).eq(EventStatus::Pending))
        .to_owned();
    txn.execute(&update).await?;
    Ok(())
}

/// Keeps an event as failed with an error that retrying cannot cure (a
/// cascade stopped at the depth limit), in the worker's transaction.
pub async fn stop(txn: &DatabaseTransaction, id: i64, error: &str) -> Result<(), DbErr> {
    let stopped = Query::update()
        .table(automation_event::Entity)
        .value(automation_event::Column::Status, EventStatus::Failed)
        .value(automation_event::Column::LastError, error.to_owned())
        .and_where(Expr::col(automation_event::Column::Id).eq(id))
        .to_owned();
    txn.execute(&stopped).await?;
    Ok(())
}

/// Records a failed attempt: retried later with exponential backoff, or
/// kept as failed after the last attempt.
pub async fn fail(
    db: &DatabaseConnection,
    event: &automation_event::Model,
    error: &str,
    max_attempts: i32,
) -> Result<(), DbErr> {
    let txn = begin_write_first(db).await?;
    let mut update = Query::update()
        .table(automation_event::Entity)
        .value(
            automation_event::Column::LastError,
            error.chars().take(2000).collect::<String>(),
        )
        .value(
            automation_event::Column::LockedUntil,
            Option::<DateTime<Utc>>::None,
        )
        .and_where(still_ours(event))
        .to_owned();
    if event.attempts >= max_attempts {
        update.value(automation_event::Column::Status, EventStatus::Failed);
    } else {
        update
            .value(automation_event::Column::Status, EventStatus::Pending)
            .value(
                automation_event::Column::RunAt,
                now() + backoff(event.attempts),
            );
    }
    txn.execute(&update).await?;
    txn.commit().await
}

/// 1 s, 2 s, 4 s, ... up to 5 minutes.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let seconds = 1i64 << attempts.clamp(0, 16).saturating_sub(1);
    chrono::Duration::seconds(Ord::min(seconds, 300))
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let seconds: Vec<i64> = (1..=11).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}

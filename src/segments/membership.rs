//! The stored membership of tracked segments (those with triggers, or
//! listened to by a script), kept current as subjects change.
//!
//! Every change to a subject calls [`reevaluate`] in its transaction: the
//! tracked segments are evaluated in memory for the subjects the change can
//! move (the subject itself, and its account or users when a filter reaches
//! across), against their stored membership; each entry and exit goes
//! through [`record`], which writes the history row, the membership and the
//! SEGMENT_ENTERED / SEGMENT_EXITED outbox event. Changes too large for
//! memory, and the sweep of time-based segments, compare the SQL compiler's
//! answer with the stored membership instead ([`resync`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{automation_event, segment, segment_change, segment_membership, tag_change, user};
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict, Order, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::SegmentError;
use super::data::{self, Needs};
use super::filter::{Filter, Reach, SubjectKind, evaluate};
use super::sql::{Backend, SqlContext, select_ids};
use crate::db::{lock_row, max_id};
use crate::outbox;
use crate::vocab::{EventKind, SubjectKind as DomainKind};

/// More subjects than this in one change are re-evaluated with SQL, one
/// statement per tracked segment, rather than loaded into memory.
pub const MAX_IN_MEMORY: usize = 2_000;

/// Rows per multi-row insert or `IN` list.
const CHUNK: usize = 500;

/// Why a subject was re-evaluated, and whether it entered or left: the
/// words of `segment_changes`, typed in the entity.
pub use entity::vocab::{MembershipOp as Op, Reason};

/// One subject entering or leaving a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub subject_id: i64,
    pub reason: Reason,
    /// The tag change that led to it, when one did.
    pub cause: Option<i64>,
}

/// One subject a change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub kind: DomainKind,
    pub id: i64,
    /// The tag change that touched it, when one did.
    pub cause: Option<i64>,
}

/// The segments of a workspace with their parsed filters.
pub struct Segments {
    pub all: Vec<segment::Model>,
    /// The filters within the size limits, by segment name.
    filters: HashMap<String, Filter>,
    /// Every filter that parses, by segment name.
    stored: HashMap<String, Filter>,
}

impl Segments {
    /// Every segment of the workspace.
    pub async fn load(db: &impl ConnectionTrait, workspace_id: i64) -> Result<Self, SegmentError> {
        let all = segment::Entity::find()
            .filter(segment::Column::WorkspaceId.eq(workspace_id))
            .order_by_asc(segment::Column::Id)
            .all(db)
            .await?;
        let stored: HashMap<String, Filter> = all
            .iter()
            .filter_map(|s| Some((s.name.clone(), stored_filter(s)?)))
            .collect();
        let lookup = |name: &str| stored.get(name).cloned();
        let oversized: HashMap<String, String> =
            Filter::oversized_segments(stored.keys().map(String::as_str), &lookup)
                .into_iter()
                .collect();
        for (name, problem) in &oversized {
            tracing::warn!(
                segment = %name,
                %problem,
                "segment past the filter size limits: in_segment reads it as false"
            );
        }
        let filters = stored
            .iter()
            .filter(|(name, _)| !oversized.contains_key(*name))
            .map(|(name, filter)| (name.clone(), filter.clone()))
            .collect();
        Ok(Segments {
            all,
            filters,
            stored,
        })
    }

    /// The filter of the segment named `name`, for evaluation: `None` for a
    /// segment whose filter, its segments expanded, breaks the size limits
    /// (one stored before the limits): `in_segment` reads it as false, as
    /// an unknown segment, and the statement stays bounded.
    pub fn filter(&self, name: &str) -> Option<Filter> {
        self.filters.get(name).cloned()
    }

    /// The stored filter of the segment named `name`, whatever its size:
    /// for checking new filters, which then report it as too large.
    pub fn stored(&self, name: &str) -> Option<Filter> {
        self.stored.get(name).cloned()
    }

    /// The tracked segments with their filters and what those read.
    fn tracked(&self) -> Vec<(&segment::Model, &Filter, Reach)> {
        let lookup = |name: &str| self.filter(name);
        self.all
            .iter()
            .filter(|s| s.tracked)
            .filter_map(|s| {
                let filter = self.filters.get(&s.name)?;
                Some((s, filter, filter.reach(&lookup)))
            })
            .collect()
    }
}

/// The filter a segment stores (canonical text, so it parses). Parsed
/// filters are kept by their text, so the many changes that read the same
/// segments parse each filter once.
pub fn stored_filter(segment: &segment::Model) -> Option<Filter> {
    use std::sync::{LazyLock, Mutex, PoisonError};
    /// Distinct filter texts kept at most (then the cache starts afresh).
    const KEPT: usize = 10_000;
    type Parsed = HashMap<(SubjectKind, String), Filter>;
    static PARSED: LazyLock<Mutex<Parsed>> = LazyLock::new(Default::default);
    let kind = SubjectKind::from(segment.subject_kind);
    let key = (kind, segment.filter.clone());
    if let Some(filter) = PARSED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Some(filter.clone());
    }
    let filter = Filter::parse(&segment.filter, kind).ok()?;
    let mut parsed = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
    if parsed.len() >= KEPT {
        parsed.clear();
    }
    parsed.insert(key, filter.clone());
    Some(filter)
}

/// Whether the workspace has a tracked segment (one cheap query, made on
/// every change before anything else).
pub async fn has_tracked(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<bool, SegmentError> {
    let found: Option<i64> = segment::Entity::find()
        .select_only()
        .column(segment::Column::Id)
        .filter(segment::Column::WorkspaceId.eq(workspace_id))
        .filter(segment::Column::Tracked.eq(true))
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// On PostgreSQL, makes the transaction's membership decisions in this
/// workspace take turns with other transactions' (a transaction-scoped
/// advisory lock, re-entrant): without it, two transactions changing one
/// subject at once could each miss the other's change and both decide "not
/// a member". Writers take it before their first tag lock, so the locks are
/// always taken in one order. SQLite's writers take turns already.
pub async fn serialize(db: &impl ConnectionTrait, workspace_id: i64) -> Result<(), SegmentError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let lock = Query::select()
        .expr(Func::cust("pg_advisory_xact_lock").args([
            Expr::val(SEGMENTS_LOCK_CLASS),
            // the workspace id folded into the lock's second 32-bit key
            Expr::val((workspace_id % i64::from(i32::MAX)) as i32),
        ]))
        .to_owned();
    db.query_one(&lock).await?;
    Ok(())
}

/// The first key of the advisory locks of segment membership.
const SEGMENTS_LOCK_CLASS: i32 = 0x7473_6567; // "tseg"

/// The highest tag change id so far: the changes a write makes are above it.
pub async fn tag_change_floor(db: &impl ConnectionTrait) -> Result<i64, SegmentError> {
    Ok(max_id(db, tag_change::Entity, tag_change::Column::Id).await?)
}

/// Re-evaluates the subjects whose tags changed above `floor` in this
/// transaction. The tag write path calls it after its writes, having found
/// tracked segments and taken the workspace's turn before them.
pub async fn after_tag_writes(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    floor: i64,
    depth: i32,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    let changed: Vec<(DomainKind, i64, i64)> = tag_change::Entity::find()
        .select_only()
        .column(tag_change::Column::SubjectKind)
        .column(tag_change::Column::SubjectId)
        .column_as(tag_change::Column::Id.max(), "cause")
        .filter(tag_change::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_change::Column::Id.gt(floor))
        .group_by(tag_change::Column::SubjectKind)
        .group_by(tag_change::Column::SubjectId)
        .limit(MAX_IN_MEMORY as u64 + 1)
        .into_tuple()
        .all(db)
        .await?;
    if changed.len() > MAX_IN_MEMORY {
        return resync_all(db, workspace_id, Reason::Tags, depth, now).await;
    }
    let changed: Vec<Changed> = changed
        .into_iter()
        .map(|(kind, id, cause)| Changed {
            kind,
            id,
            cause: Some(cause),
        })
        .collect();
    reevaluate_in_turn(db, workspace_id, &changed, Reason::Tags, depth, now).await
}

/// Re-evaluates the tracked segments for subjects that changed (and for
/// their account or users, when a filter reaches across), recording every
/// entry and exit. `depth` is the automation depth of the change.
pub async fn reevaluate(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    changed: &[Changed],
    reason: Reason,
    depth: i32,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    if changed.is_empty() || !has_tracked(db, workspace_id).await? {
        return Ok(());
    }
    serialize(db, workspace_id).await?;
    reevaluate_in_turn(db, workspace_id, changed, reason, depth, now).await
}

/// [`reevaluate`], for a caller that has found tracked segments and taken
/// the workspace's turn ([`serialize`]) already.
async fn reevaluate_in_turn(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    changed: &[Changed],
    reason: Reason,
    depth: i32,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    let segments = Segments::load(db, workspace_id).await?;
    let lookup = |name: &str| segments.filter(name);
    let tracked = segments.tracked();
    let of_kind = |kind: SubjectKind| {
        tracked
            .iter()
            .filter(move |(s, _, _)| SubjectKind::from(s.subject_kind) == kind)
    };
    let user_reach =
        of_kind(SubjectKind::User).fold(Reach::default(), |acc, (_, _, r)| union(acc, *r));
    let account_reach =
        of_kind(SubjectKind::Account).fold(Reach::default(), |acc, (_, _, r)| union(acc, *r));
    let tracks_users = of_kind(SubjectKind::User).next().is_some();
    let tracks_accounts = of_kind(SubjectKind::Account).next().is_some();

    // The subjects to evaluate, with why.
    let mut users: BTreeMap<i64, (Reason, Option<i64>)> = BTreeMap::new();
    let mut accounts: BTreeMap<i64, (Reason, Option<i64>)> = BTreeMap::new();
    for change in changed {
        let map = match change.kind {
            DomainKind::User => &mut users,
            DomainKind::Account => &mut accounts,
        };
        map.entry(change.id).or_insert((reason, change.cause));
    }
    if tracks_users && user_reach.account && !accounts.is_empty() {
        for id in users_of(db, workspace_id, accounts.keys().copied().collect()).await? {
            users.entry(id).or_insert((Reason::Related, None));
        }
    }
    if tracks_accounts && account_reach.users && !users.is_empty() {
        for id in accounts_of(db, workspace_id, users.keys().copied().collect()).await? {
            accounts.entry(id).or_insert((Reason::Related, None));
        }
    }
    if !tracks_users {
        users.clear();
    }
    if !tracks_accounts {
        accounts.clear();
    }
    if users.len() + accounts.len() > MAX_IN_MEMORY {
        return resync_all(db, workspace_id, reason, depth, now).await;
    }
    if users.is_empty() && accounts.is_empty() {
        return Ok(());
    }

    let since = |reach: Reach| {
        reach.events_window.map(|seconds| {
            now - chrono::TimeDelta::try_seconds(seconds).unwrap_or(chrono::TimeDelta::MAX)
        })
    };
    let user_ids: Vec<i64> = users.keys().copied().collect();
    let account_ids: Vec<i64> = accounts.keys().copied().collect();
    let user_data = data::users(
        db,
        workspace_id,
        &user_ids,
        Needs {
            account: user_reach.account,
            users: user_reach.users,
            events_since: since(user_reach),
        },
    )
    .await?;
    let account_data = data::accounts(
        db,
        workspace_id,
        &account_ids,
        Needs {
            account: false,
            users: account_reach.users,
            events_since: since(account_reach),
        },
    )
    .await?;
    let segment_ids: Vec<i64> = tracked.iter().map(|(s, _, _)| s.id).collect();
    let all_ids: Vec<i64> = user_ids.iter().chain(&account_ids).copied().collect();
    let members: HashSet<(i64, i64)> = segment_membership::Entity::find()
        .select_only()
        .column(segment_membership::Column::SegmentId)
        .column(segment_membership::Column::SubjectId)
        .filter(segment_membership::Column::SegmentId.is_in(segment_ids))
        .filter(segment_membership::Column::SubjectId.is_in(all_ids))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();

    for (segment, filter, _) in &tracked {
        let (subjects, data) = match filter.kind() {
            SubjectKind::User => (&users, &user_data),
            SubjectKind::Account => (&accounts, &account_data),
        };
        let mut entered = Vec::new();
        let mut exited = Vec::new();
        for (&id, &(reason, cause)) in subjects {
            let Some(subject) = data.get(&id) else {
                continue; // deleted meanwhile
            };
            let matches = evaluate(filter, subject, now, &lookup);
            let was = members.contains(&(segment.id, id));
            let moved = Move {
                subject_id: id,
                reason,
                cause,
            };
            if matches && !was {
                entered.push(moved);
            } else if !matches && was {
                exited.push(moved);
            }
        }
        record(
            db,
            workspace_id,
            segment,
            &entered,
            &exited,
            Some(depth),
            now,
        )
        .await?;
    }
    Ok(())
}

fn union(a: Reach, b: Reach) -> Reach {
    Reach {
        clock: a.clock || b.clock,
        account: a.account || b.account,
        users: a.users || b.users,
        events_window: match (a.events_window, b.events_window) {
            (Some(x), Some(y)) => Some(Ord::max(x, y)),
            (x, y) => x.or(y),
        },
    }
}

/// The users of these accounts.
async fn users_of(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    accounts: Vec<i64>,
) -> Result<Vec<i64>, SegmentError> {
    Ok(user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::WorkspaceId.eq(workspace_id))
        .filter(user::Column::AccountId.is_in(accounts))
        .limit(MAX_IN_MEMORY as u64 + 1)
        .into_tuple()
        .all(db)
        .await?)
}

/// The accounts of these users.
async fn accounts_of(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    users: Vec<i64>,
) -> Result<Vec<i64>, SegmentError> {
    let ids: Vec<Option<i64>> = user::Entity::find()
        .select_only()
        .column(user::Column::AccountId)
        .filter(user::Column::WorkspaceId.eq(workspace_id))
        .filter(user::Column::Id.is_in(users))
        .into_tuple()
        .all(db)
        .await?;
    let mut ids: Vec<i64> = ids.into_iter().flatten().collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Re-evaluates every tracked segment of the workspace with SQL.
pub async fn resync_all(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    reason: Reason,
    depth: i32,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    let segments = Segments::load(db, workspace_id).await?;
    for segment in segments.all.iter().filter(|s| s.tracked) {
        resync(
            db,
            workspace_id,
            segment,
            &segments,
            now,
            Some((reason, depth)),
        )
        .await?;
    }
    Ok(())
}

/// The ids of the workspace's subjects that match a segment's filter now.
pub fn members_query(
    backend: DbBackend,
    workspace_id: i64,
    filter: &Filter,
    segments: &Segments,
    now: DateTime<Utc>,
) -> SelectStatement {
    let lookup = |name: &str| segments.filter(name);
    let ctx = SqlContext {
        workspace_id,
        now,
        backend: backend_of(backend),
        segments: &lookup,
    };
    select_ids(filter, &ctx)
}

/// The ids of the workspace's subjects that match `filter` now: the whole
/// set, read with [`members_query`].
pub async fn matching_ids(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    filter: &Filter,
    segments: &Segments,
    now: DateTime<Utc>,
) -> Result<HashSet<i64>, SegmentError> {
    let query = members_query(
        db.get_database_backend(),
        workspace_id,
        filter,
        segments,
        now,
    );
    Ok(db
        .query_all(&query)
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0))
        .collect::<Result<_, _>>()?)
}

/// The compiler's backend for a connection's.
pub fn backend_of(backend: DbBackend) -> Backend {
    match backend {
        DbBackend::Postgres => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// Brings a segment's stored membership to its filter's answer now (SQL):
/// with `fire`, each entry and exit is recorded and announced (reason and
/// depth given); without, the membership is set silently (a segment just
/// created, updated or newly tracked).
pub async fn resync(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment: &segment::Model,
    segments: &Segments,
    now: DateTime<Utc>,
    fire: Option<(Reason, i32)>,
) -> Result<(), SegmentError> {
    let Some(filter) = stored_filter(segment) else {
        return Ok(());
    };
    serialize(db, workspace_id).await?;
    let matching = matching_ids(db, workspace_id, &filter, segments, now).await?;
    let members: HashSet<i64> = segment_membership::Entity::find()
        .select_only()
        .column(segment_membership::Column::SubjectId)
        .filter(segment_membership::Column::SegmentId.eq(segment.id))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let reason = fire.map_or(Reason::Time, |(reason, _)| reason);
    let moves = |ids: Vec<i64>| -> Vec<Move> {
        let mut ids = ids;
        ids.sort_unstable();
        ids.into_iter()
            .map(|subject_id| Move {
                subject_id,
                reason,
                cause: None,
            })
            .collect()
    };
    let entered = moves(matching.difference(&members).copied().collect());
    let exited = moves(members.difference(&matching).copied().collect());
    record(
        db,
        workspace_id,
        segment,
        &entered,
        &exited,
        fire.map(|(_, depth)| depth),
        now,
    )
    .await
}

/// Applies entries and exits to a segment's stored membership. With
/// `fire` (the automation depth), each is also written to the history and
/// announced in the outbox; without, the membership changes silently.
pub async fn record(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment: &segment::Model,
    entered: &[Move],
    exited: &[Move],
    fire: Option<i32>,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    if entered.is_empty() && exited.is_empty() {
        return Ok(());
    }
    if let Some(depth) = fire {
        announce(db, workspace_id, segment, entered, exited, depth, now).await?;
    }
    for chunk in entered.chunks(CHUNK) {
        let mut insert = Query::insert()
            .into_table(segment_membership::Entity)
            .columns([
                segment_membership::Column::SegmentId,
                segment_membership::Column::SubjectId,
                segment_membership::Column::EnteredAt,
            ])
            .on_conflict(
                OnConflict::columns([
                    segment_membership::Column::SegmentId,
                    segment_membership::Column::SubjectId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .to_owned();
        for moved in chunk {
            insert.values_panic([segment.id.into(), moved.subject_id.into(), now.into()]);
        }
        db.execute(&insert).await?;
    }
    for chunk in exited.chunks(CHUNK) {
        segment_membership::Entity::delete_many()
            .filter(segment_membership::Column::SegmentId.eq(segment.id))
            .filter(segment_membership::Column::SubjectId.is_in(chunk.iter().map(|m| m.subject_id)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Writes the history rows of entries and exits, and their outbox events.
async fn announce(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment: &segment::Model,
    entered: &[Move],
    exited: &[Move],
    depth: i32,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    // Writers of one segment take turns, so the rows above the floor are ours.
    lock_row(db, segment::Entity, segment::Column::Id, segment.id).await?;
    let floor = max_id(db, segment_change::Entity, segment_change::Column::Id).await?;
    let moves = entered
        .iter()
        .map(|m| (Op::Entered, m))
        .chain(exited.iter().map(|m| (Op::Exited, m)))
        .collect::<Vec<_>>();
    for chunk in moves.chunks(CHUNK) {
        let mut insert = Query::insert()
            .into_table(segment_change::Entity)
            .columns([
                segment_change::Column::WorkspaceId,
                segment_change::Column::SegmentId,
                segment_change::Column::SubjectKind,
                segment_change::Column::SubjectId,
                segment_change::Column::Op,
                segment_change::Column::Reason,
                segment_change::Column::CauseId,
                segment_change::Column::At,
            ])
            .to_owned();
        for (op, moved) in chunk {
            insert.values_panic([
                workspace_id.into(),
                segment.id.into(),
                segment.subject_kind.as_str().into(),
                moved.subject_id.into(),
                op.as_str().into(),
                moved.reason.as_str().into(),
                moved.cause.into(),
                now.into(),
            ]);
        }
        db.execute(&insert).await?;
    }
    for op in [Op::Entered, Op::Exited] {
        let events = Query::select()
            .column(segment_change::Column::WorkspaceId)
            .expr(Expr::val(event_kind(op)))
            .column(segment_change::Column::SubjectKind)
            .column(segment_change::Column::SubjectId)
            .column(segment_change::Column::SegmentId)
            .column(segment_change::Column::Id)
            .expr(Expr::val(depth))
            .column(segment_change::Column::CauseId)
            .from(segment_change::Entity)
            .and_where(Expr::col(segment_change::Column::SegmentId).eq(segment.id))
            .and_where(Expr::col(segment_change::Column::Id).gt(floor))
            .and_where(Expr::col(segment_change::Column::Op).eq(op.as_str()))
            .order_by(segment_change::Column::Id, Order::Asc)
            .to_owned();
        outbox::enqueue_selected(db, automation_event::Column::SegmentId, events).await?;
    }
    outbox::announce(db, outbox::Queue::Automation).await?;
    Ok(())
}

/// The outbox event announcing an entry or an exit.
fn event_kind(op: Op) -> EventKind {
    match op {
        Op::Entered => EventKind::SegmentEntered,
        Op::Exited => EventKind::SegmentExited,
    }
}

/// Forgets a deleted subject's stored memberships (no exit is announced:
/// there is no subject left to act on).
pub async fn forget_subject(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: DomainKind,
    id: i64,
) -> Result<(), SegmentError> {
    let segments = Query::select()
        .column(segment::Column::Id)
        .from(segment::Entity)
        .and_where(Expr::col(segment::Column::WorkspaceId).eq(workspace_id))
        .and_where(Expr::col(segment::Column::SubjectKind).eq(kind.as_str()))
        .to_owned();
    segment_membership::Entity::delete_many()
        .filter(segment_membership::Column::SubjectId.eq(id))
        .filter(segment_membership::Column::SegmentId.in_subquery(segments))
        .exec(db)
        .await?;
    Ok(())
}

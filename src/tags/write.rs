//! The one write path of tag assignments.
//!
//! [`apply`] adds or removes one tag on a set of subjects of one kind, in
//! the caller's transaction, with set-based SQL: one statement writes the
//! history rows of the subjects that really change, one applies them to
//! `tag_assignments`, one writes their outbox events (on PostgreSQL the
//! three are one statement, with the announcement). Subjects that already
//! have the tag (or do not have it, when removing) are left alone: no
//! history, no event. [`add_pairs`] adds many tags at once, each to its
//! own subjects (an import batch), with the same three statements, once for
//! all of them. Whatever the source (MANUAL, BULK, IMPORT, TRIGGER, SCRIPT),
//! every tag change goes through here.

use entity::{account, automation_event, tag, tag_assignment, tag_change, user};
use sea_orm::sea_query::{
    Condition, Expr, ExprTrait, JoinType, Query, SelectStatement, SimpleExpr, TableRef,
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityName};

use super::{Cause, Op, Source};
use crate::db::{JsonRows, lock_row, max_id};
use crate::outbox;
use crate::time::now;
use crate::vocab::{EventKind, SubjectKind};

/// The subjects a write applies to (all of the write's kind).
#[derive(Debug, Clone)]
pub enum Target {
    /// These ids (ids not in the workspace are ignored).
    Ids(Vec<i64>),
    /// The ids a query selects (one column of subject ids).
    Select(Box<SelectStatement>),
}

/// One tag added to or removed from a target.
#[derive(Debug, Clone)]
pub struct TagWrite<'a> {
    pub workspace_id: i64,
    pub op: Op,
    pub tag_id: i64,
    pub kind: SubjectKind,
    pub source: Source,
    /// The API key, script or segment name.
    pub actor: Option<&'a str>,
    /// What led to this change, when automated.
    pub cause: Cause,
    /// How many automated steps led here.
    pub depth: i32,
}

impl<'a> TagWrite<'a> {
    /// Who makes this write, and why.
    pub fn origin(&self) -> Origin<'a> {
        Origin {
            workspace_id: self.workspace_id,
            kind: self.kind,
            source: self.source,
            actor: self.actor,
            cause: self.cause,
            depth: self.depth,
        }
    }
}

/// The table of a subject kind, as a SeaQuery table reference.
pub fn subject_table(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::Account => account::Entity.table_name(),
        SubjectKind::User => user::Entity.table_name(),
    }
}

/// `s.id IN (target)` for a subject table aliased `s`.
fn target_condition(target: &Target) -> SimpleExpr {
    match target {
        Target::Ids(ids) => Expr::col(("s", "id")).is_in(ids.iter().copied()),
        Target::Select(select) => Expr::col(("s", "id")).in_subquery((**select).clone()),
    }
}

/// On PostgreSQL, locks these tags' rows (`FOR UPDATE`) in ascending id
/// order, until the transaction ends. A transaction that writes several
/// tags takes them all here first: writers then always queue for tags in
/// the same order, so two of them can never each hold a tag the other is
/// waiting for (a deadlock, which PostgreSQL resolves by failing one).
/// Such a caller then writes each tag with [`apply_locked`].
pub async fn lock_tags(txn: &DatabaseTransaction, tag_ids: &[i64]) -> Result<(), DbErr> {
    if txn.get_database_backend() != sea_orm::DbBackend::Postgres || tag_ids.is_empty() {
        return Ok(());
    }
    let mut ids = tag_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // The lock is taken as rows leave the sort, so in id order.
    let lock = Query::select()
        .column(tag::Column::Id)
        .from(tag::Entity)
        .and_where(Expr::col(tag::Column::Id).is_in(ids))
        .order_by(tag::Column::Id, sea_orm::sea_query::Order::Asc)
        .lock(sea_orm::sea_query::LockType::Update)
        .to_owned();
    txn.query_all(&lock).await?;
    Ok(())
}

/// Applies the write; returns how many subjects really changed.
pub async fn apply(
    txn: &DatabaseTransaction,
    write: &TagWrite<'_>,
    target: &Target,
) -> Result<u64, DbErr> {
    // Writers of one tag take turns, so "has it already?" stays true
    // between the statements below.
    lock_row(txn, tag::Entity, tag::Column::Id, write.tag_id).await?;
    apply_locked(txn, write, target).await
}

/// [`apply`] for a caller that holds the tag's lock already
/// ([`lock_tags`]).
pub async fn apply_locked(
    txn: &DatabaseTransaction,
    write: &TagWrite<'_>,
    target: &Target,
) -> Result<u64, DbErr> {
    if matches!(target, Target::Ids(ids) if ids.is_empty()) {
        return Ok(0);
    }
    // A list of ids (one subject, a page of a bulk call) in one round
    // trip; a query's subjects (a segment, a filter, a tag's holders: up
    // to every subject of the workspace) in three statements, which read
    // the new history rows back by index instead of materializing what
    // the insert returns (a bulk add to 100,000 users: 1.77–1.84 s
    // against 1.83–1.99 s in one statement).
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres
        && matches!(target, Target::Ids(_))
    {
        return apply_in_one_statement(txn, write, target).await;
    }
    // History rows of this write are those above the floor (`written`).
    let floor = max_id(txn, tag_change::Entity, tag_change::Column::Id).await?;

    // 1. History: one row per subject that really changes.
    let changed = insert_history(txn, target_history(write, target)).await?;
    if changed == 0 {
        return Ok(0);
    }
    let this_write = || written(txn, &[write.tag_id], floor);

    // 2. The assignments themselves.
    match write.op {
        Op::Added => insert_assignments(txn, this_write()).await?,
        Op::Removed => {
            let removed = Query::select()
                .from(tag_change::Entity)
                .and_where(this_write())
                .to_owned();
            txn.execute(&assignments_delete(write, removed)).await?;
        }
    }

    // 3. The outbox: one event per change, for the automation worker.
    enqueue_events(txn, write.op, write.depth, this_write()).await?;
    super::feed::announce(txn, write.tag_id, floor).await?;
    Ok(changed)
}

/// [`apply_locked`] on PostgreSQL for a list of ids: the same steps in one
/// statement, whose data-modifying `WITH` queries read the history rows
/// the first one returns (`h`): the history, the assignments (or their
/// deletion), the outbox events and the announcement
/// ([`super::feed::announce`]: the floor is the first new row's id less
/// one; no other writer of the tag made rows in between, since it is
/// locked). One round trip where there were five (the floor, three writes
/// and the notification): under 600 `addTags`/s, the database's and the
/// server's work per change is what the automation's latency queues
/// behind.
async fn apply_in_one_statement(
    txn: &DatabaseTransaction,
    write: &TagWrite<'_>,
    target: &Target,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::{Alias, CommonTableExpression, WithClause};
    let h = Alias::new("h");
    let mut history = history_insert(target_history(write, target))?;
    history.returning_all();
    let from_h = || Query::select().from(h.clone()).to_owned();
    let apply: sea_orm::sea_query::SubQueryStatement = match write.op {
        Op::Added => assignments_insert(from_h())?.into(),
        Op::Removed => assignments_delete(write, from_h()).into(),
    };
    let events = outbox::enqueue_statement(
        automation_event::Column::TagId,
        event_rows(write.op, write.depth, from_h()),
    )?;
    let cte = |name: &str, query: sea_orm::sea_query::SubQueryStatement| {
        CommonTableExpression::new()
            .table_name(Alias::new(name))
            .query(query)
            .to_owned()
    };
    let with = WithClause::new()
        .cte(cte("h", history.into()))
        .cte(cte("a", apply))
        .cte(cte("o", events.into()))
        .to_owned();
    let result = Query::select()
        .expr(Expr::cust("(SELECT COUNT(*) FROM h)"))
        .expr(Expr::cust(format!(
            "(SELECT pg_notify('{}', MIN(tag_id)::text || ':' || (MIN(id) - 1)::text)::text \
             FROM h HAVING COUNT(*) > 0)",
            super::feed::CHANNEL
        )))
        .to_owned();
    let statement = with.query(result);
    let row = txn
        .query_one(&statement)
        .await?
        .ok_or_else(|| DbErr::Custom("the tag write returned no row".into()))?;
    Ok(row.try_get_by_index::<i64>(0)? as u64)
}

/// The history rows of a write ([`history_rows`]) for the subjects of its
/// target, in id order.
fn target_history(write: &TagWrite<'_>, target: &Target) -> SelectStatement {
    let mut changes = history_rows(&write.origin(), write.op, Expr::val(write.tag_id), true);
    changes
        .from_as(subject_table(write.kind), "s")
        .and_where(target_condition(target))
        .order_by(("s", "id"), sea_orm::sea_query::Order::Asc);
    changes
}

/// The deletion of a removal's assignments: those of the write's tag on
/// the subjects of the history rows `changes` selects (its column is
/// chosen here).
fn assignments_delete(
    write: &TagWrite<'_>,
    mut changes: SelectStatement,
) -> sea_orm::sea_query::DeleteStatement {
    changes.column(tag_change::Column::SubjectId);
    Query::delete()
        .from_table(tag_assignment::Entity)
        .and_where(Expr::col(tag_assignment::Column::TagId).eq(write.tag_id))
        .and_where(Expr::col(tag_assignment::Column::SubjectKind).eq(write.kind.as_str()))
        .and_where(Expr::col(tag_assignment::Column::SubjectId).in_subquery(changes))
        .to_owned()
}

/// The history rows a write of these tags made after taking `floor`, the
/// largest history id before it. On SQLite, whose writers take turns, that
/// is every row above the floor (a range of the primary key, 30% cheaper to
/// read than through the tag index). On PostgreSQL other transactions
/// insert history meanwhile, and may commit before the next statement
/// reads: only the rows of the write's tags, which it holds locked.
fn written(txn: &DatabaseTransaction, tag_ids: &[i64], floor: i64) -> SimpleExpr {
    let above = Expr::col(tag_change::Column::Id).gt(floor);
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        Expr::col(tag_change::Column::TagId)
            .is_in(tag_ids.iter().copied())
            .and(above)
    } else {
        above
    }
}

/// Step 1 of a write, the history rows, without its subjects: the caller
/// adds the subject table aliased `s` (and what selects its rows) and the
/// order. A row for each subject of the workspace that really changes: it
/// lacks the `tag` it gains, or has the one it loses. Unless `checked` is
/// false, for subjects known to have no tags ([`Pairs::created`]): then
/// every subject selected gets its row.
fn history_rows(origin: &Origin<'_>, op: Op, tag: Expr, checked: bool) -> SelectStatement {
    let kind = origin.kind.as_str();
    let has_tag = Query::select()
        .expr(Expr::val(1))
        .from_as(tag_assignment::Entity, "a")
        .and_where(Expr::col(("a", tag_assignment::Column::TagId)).eq(tag.clone()))
        .and_where(Expr::col(("a", tag_assignment::Column::SubjectKind)).eq(kind))
        .and_where(Expr::col(("a", tag_assignment::Column::SubjectId)).equals(("s", "id")))
        .to_owned();
    let mut rows = Query::select();
    rows.expr(Expr::val(origin.workspace_id))
        .expr(Expr::val(op.as_str()))
        .expr(tag)
        .expr(Expr::val(kind))
        .expr(Expr::col(("s", "id")))
        .expr(Expr::val(origin.source.as_str()))
        .expr(Expr::val(origin.actor.map(str::to_owned)))
        .expr(Expr::val(origin.cause.tag_change()))
        .expr(Expr::val(origin.cause.segment_change()))
        .expr(Expr::val(now()))
        .and_where(Expr::col(("s", "workspace_id")).eq(origin.workspace_id));
    if checked {
        rows.and_where(match op {
            Op::Added => Expr::exists(has_tag).not(),
            Op::Removed => Expr::exists(has_tag),
        });
    }
    rows
}

/// Inserts the history rows `changes` selects ([`history_rows`]); returns how
/// many.
async fn insert_history(txn: &DatabaseTransaction, changes: SelectStatement) -> Result<u64, DbErr> {
    Ok(txn
        .execute(&history_insert(changes)?)
        .await?
        .rows_affected())
}

/// The insert of the history rows `changes` selects.
fn history_insert(changes: SelectStatement) -> Result<sea_orm::sea_query::InsertStatement, DbErr> {
    Ok(Query::insert()
        .into_table(tag_change::Entity)
        .columns([
            tag_change::Column::WorkspaceId,
            tag_change::Column::Op,
            tag_change::Column::TagId,
            tag_change::Column::SubjectKind,
            tag_change::Column::SubjectId,
            tag_change::Column::Source,
            tag_change::Column::Actor,
            tag_change::Column::CauseId,
            tag_change::Column::CauseSegmentChangeId,
            tag_change::Column::At,
        ])
        .select_from(changes)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned())
}

/// Creates the assignments of the additions `this_write` selects in history.
/// None of them exists: their history rows were written only for subjects
/// without the tag, and every writer of a tag holds its lock (`lock_tags`,
/// `lock_row`; SQLite's writers take turns). So a plain insert, without
/// `ON CONFLICT DO NOTHING`, whose check of the unique index made the
/// statement 15-30 % slower on PostgreSQL (100,000 rows: 580-650 against
/// 670-930 ms); were that ever broken, the write fails on the unique index
/// instead of passing silently.
async fn insert_assignments(
    txn: &DatabaseTransaction,
    this_write: SimpleExpr,
) -> Result<(), DbErr> {
    let rows = Query::select()
        .from(tag_change::Entity)
        .and_where(this_write)
        .to_owned();
    txn.execute(&assignments_insert(rows)?).await?;
    Ok(())
}

/// The insert of assignments from the history rows `rows` selects (its
/// columns are chosen here).
fn assignments_insert(
    mut rows: SelectStatement,
) -> Result<sea_orm::sea_query::InsertStatement, DbErr> {
    rows.columns([
        tag_change::Column::WorkspaceId,
        tag_change::Column::TagId,
        tag_change::Column::SubjectKind,
        tag_change::Column::SubjectId,
        tag_change::Column::Source,
        tag_change::Column::Actor,
        tag_change::Column::At,
    ]);
    Ok(Query::insert()
        .into_table(tag_assignment::Entity)
        .columns([
            tag_assignment::Column::WorkspaceId,
            tag_assignment::Column::TagId,
            tag_assignment::Column::SubjectKind,
            tag_assignment::Column::SubjectId,
            tag_assignment::Column::Source,
            tag_assignment::Column::Actor,
            tag_assignment::Column::At,
        ])
        .select_from(rows)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned())
}

/// Writes one outbox event per change `this_write` selects in history, in
/// history order, for the automation worker.
async fn enqueue_events(
    txn: &DatabaseTransaction,
    op: Op,
    depth: i32,
    this_write: SimpleExpr,
) -> Result<(), DbErr> {
    let changes = Query::select()
        .from(tag_change::Entity)
        .and_where(this_write)
        .to_owned();
    outbox::enqueue_selected(
        txn,
        automation_event::Column::TagId,
        event_rows(op, depth, changes),
    )
    .await
}

/// The outbox rows of the history rows `changes` selects (its columns are
/// chosen here), in history order.
fn event_rows(op: Op, depth: i32, mut changes: SelectStatement) -> SelectStatement {
    let event_kind = match op {
        Op::Added => EventKind::TagAdded,
        Op::Removed => EventKind::TagRemoved,
    };
    changes
        .column(tag_change::Column::WorkspaceId)
        .expr(Expr::val(event_kind))
        .column(tag_change::Column::SubjectKind)
        .column(tag_change::Column::SubjectId)
        .column(tag_change::Column::TagId)
        .column(tag_change::Column::Id)
        .expr(Expr::val(depth))
        .column(tag_change::Column::CauseId)
        .order_by(tag_change::Column::Id, sea_orm::sea_query::Order::Asc)
        .to_owned()
}

/// Who writes tags on subjects of one kind, and why: a [`TagWrite`]
/// without its one tag and op, as [`add_pairs`] takes it.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub workspace_id: i64,
    pub kind: SubjectKind,
    pub source: Source,
    pub actor: Option<&'a str>,
    pub cause: Cause,
    pub depth: i32,
}

/// The (tag id, subject id) pairs of an [`add_pairs`] write, all of its
/// kind.
#[derive(Debug, Clone, Default)]
pub struct Pairs {
    /// Pairs whose subject may have the tag already.
    pub existing: Vec<(i64, i64)>,
    /// Pairs whose subject the caller's transaction created and has not
    /// tagged since (an import's new rows): no assignment of theirs can
    /// exist, so their history rows are written without asking (a tenth of
    /// the statement's time on SQLite).
    pub created: Vec<(i64, i64)>,
}

impl Pairs {
    /// Every tag the pairs name, once each, in id order.
    pub fn tag_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .existing
            .iter()
            .chain(&self.created)
            .map(|&(tag, _)| tag)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Adds many tags at once, each to its own subjects (an import batch). The
/// same three statements as [`apply`] (history of the pairs that really
/// change, assignments, outbox events), each once for all the pairs, which
/// travel as one JSON array parameter (`json_each` on SQLite,
/// `jsonb_array_elements` on PostgreSQL) instead of a statement per tag
/// with its ids; the history of [`Pairs::created`] is a statement of its
/// own, without the check. A pair named twice counts once. History and
/// events follow subject order, each subject's tags in id order (the
/// created subjects' first). The caller has locked the tags
/// ([`lock_tags`]). Returns how many pairs really changed.
pub async fn add_pairs(
    txn: &DatabaseTransaction,
    write: &Origin<'_>,
    pairs: &Pairs,
) -> Result<u64, DbErr> {
    let floor = max_id(txn, tag_change::Entity, tag_change::Column::Id).await?;
    let mut changed = 0;
    for (pairs, checked) in [(&pairs.created, false), (&pairs.existing, true)] {
        // A pair named twice would get two history rows.
        let mut pairs = pairs.clone();
        pairs.sort_unstable();
        pairs.dedup();
        if !pairs.is_empty() {
            changed += insert_history(txn, pair_history(txn, write, &pairs, checked)).await?;
        }
    }
    if changed == 0 {
        return Ok(0);
    }
    let tag_ids = pairs.tag_ids();
    let this_write = written(txn, &tag_ids, floor);
    insert_assignments(txn, this_write.clone()).await?;
    enqueue_events(txn, Op::Added, write.depth, this_write).await?;
    super::feed::announce_many(txn, &tag_ids, floor).await?;
    Ok(changed)
}

/// The history rows of additions of `pairs` (distinct), from one JSON
/// array parameter; `checked` as [`history_rows`].
fn pair_history(
    txn: &DatabaseTransaction,
    write: &Origin<'_>,
    pairs: &[(i64, i64)],
    checked: bool,
) -> SelectStatement {
    let rows = JsonRows::new(txn);
    let (tag_id, subject_id) = (rows.bigint("p", 0), rows.bigint("p", 1));
    let pairs_table = rows.table(
        pairs
            .iter()
            .map(|&(tag, subject)| serde_json::json!([tag, subject]))
            .collect(),
    );
    let mut changes = history_rows(write, Op::Added, tag_id.clone(), checked);
    changes
        .from_function(pairs_table, "p")
        // A CROSS JOIN keeps the pairs SQLite's outer loop (an inner join
        // let it scan the workspace's subjects and, for each, the whole
        // array); SeaQuery writes it without `ON`, so the join's condition
        // is in WHERE.
        .join(
            JoinType::CrossJoin,
            TableRef::from(subject_table(write.kind)).alias("s"),
            Condition::all(),
        )
        .and_where(Expr::col(("s", "id")).eq(subject_id))
        .order_by(("s", "id"), sea_orm::sea_query::Order::Asc)
        .order_by_expr(tag_id, sea_orm::sea_query::Order::Asc);
    changes
}

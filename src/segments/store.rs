//! Saved segments: create, update, delete, find and list, with their
//! filters checked (names of other segments resolved, cycles rejected) and
//! their entry and exit actions.

use chrono::{DateTime, Utc};
use entity::segment;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use super::SegmentError;
use super::filter::{Filter, SubjectKind};
use super::membership::{self, Segments};
use crate::db::{begin_write, find_in_workspace, find_many_in_workspace, is_unique_violation};
use crate::tags::store as tag_store;
use crate::vocab::SubjectKind as DomainKind;

/// Longest segment or folder name, in characters.
pub const MAX_NAME: usize = 128;

/// Tags to add and remove, as names (input) or ids (stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagActions<T> {
    pub add: Vec<T>,
    pub remove: Vec<T>,
}

impl<T> TagActions<T> {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// A segment as a client describes it.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    pub name: String,
    pub folder: Option<String>,
    pub kind: DomainKind,
    pub filter: String,
    pub on_entry: TagActions<String>,
    pub on_exit: TagActions<String>,
}

/// A stored action list.
pub fn actions(stored: &serde_json::Value) -> TagActions<i64> {
    let ids = |key: &str| -> Vec<i64> {
        stored
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default()
    };
    TagActions {
        add: ids("add"),
        remove: ids("remove"),
    }
}

pub(crate) fn stored_actions(actions: &TagActions<i64>) -> serde_json::Value {
    json!({ "add": actions.add, "remove": actions.remove })
}

/// Whether a segment has entry or exit actions.
pub fn has_triggers(segment: &segment::Model) -> bool {
    !actions(&segment.on_entry).is_empty() || !actions(&segment.on_exit).is_empty()
}

fn clean_name(raw: &str, what: &str) -> Result<String, SegmentError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(SegmentError::Invalid(format!(
            "a {what} name must not be empty"
        )));
    }
    if name.chars().count() > MAX_NAME {
        return Err(SegmentError::Invalid(format!(
            "a {what} name has at most {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(SegmentError::Invalid(format!(
            "a {what} name must not contain control characters"
        )));
    }
    Ok(name.to_owned())
}

/// The segment's name and folder (none when blank), checked.
fn clean_names(spec: &SegmentSpec) -> Result<(String, Option<String>), SegmentError> {
    let name = clean_name(&spec.name, "segment")?;
    let folder = spec
        .folder
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| clean_name(f, "folder"))
        .transpose()?;
    Ok((name, folder))
}

/// Parses and checks a filter of the workspace: `in_segment` names must be
/// segments of the workspace, of the right kind, without cycles through
/// `defining` (the segment being saved, if any).
pub async fn check_filter(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    text: &str,
    kind: DomainKind,
    defining: Option<&str>,
) -> Result<(Filter, Segments), SegmentError> {
    let segments = Segments::load(db, workspace_id).await?;
    let lookup = |name: &str| {
        if Some(name) == defining {
            // The stored version of the segment being redefined is replaced.
            return None;
        }
        segments.stored(name)
    };
    let filter = Filter::parse_with_segments(text, SubjectKind::from(kind), defining, &lookup)
        .map_err(SegmentError::Filter)?;
    Ok((filter, segments))
}

/// Resolves action tag names to tag ids, creating the tags.
async fn action_tags(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    actions: &TagActions<String>,
) -> Result<TagActions<i64>, SegmentError> {
    let resolve = async |names: &[String]| -> Result<Vec<i64>, SegmentError> {
        let parsed = tag_store::parse_names(db, workspace_id, names).await?;
        let tags = tag_store::ensure(db, workspace_id, &parsed).await?;
        Ok(parsed
            .iter()
            .filter_map(|n| tags.iter().find(|t| t.name == n.as_str()).map(|t| t.id))
            .collect())
    };
    let add = resolve(&actions.add).await?;
    let remove = resolve(&actions.remove).await?;
    if let Some(both) = add.iter().find(|id| remove.contains(id)) {
        let name = tag_store::find_many(db, workspace_id, &[*both])
            .await?
            .pop()
            .map(|t| t.name)
            .unwrap_or_default();
        return Err(SegmentError::Invalid(format!(
            "tag {name:?} is both added and removed by the same action"
        )));
    }
    Ok(TagActions { add, remove })
}

/// Refuses a new `filter` for the segment `name` when it would take a
/// segment that names it (through any chain of `in_segment`) past the
/// expansion limits, which that segment was within.
fn refuse_oversized_dependents(
    segments: &Segments,
    name: &str,
    filter: &Filter,
) -> Result<(), SegmentError> {
    let before = |n: &str| segments.stored(n);
    let after = |n: &str| {
        if n == name {
            Some(filter.clone())
        } else {
            segments.stored(n)
        }
    };
    for other in segments.all.iter().filter(|s| s.name != name) {
        let Some(their) = segments.stored(&other.name) else {
            continue;
        };
        if let Some(problem) = their.expansion_problem(&after)
            && their.expansion_problem(&before).is_none()
        {
            return Err(SegmentError::Invalid(format!(
                "segment {:?} names {name:?} through in_segment and would become too large: \
                 {problem}",
                other.name
            )));
        }
    }
    Ok(())
}

/// Segments of the workspace whose filters name `name` through `in_segment`.
pub fn dependents<'a>(segments: &'a Segments, name: &str) -> Vec<&'a segment::Model> {
    segments
        .all
        .iter()
        .filter(|s| s.name != name)
        .filter(|s| {
            membership::stored_filter(s).is_some_and(|f| f.segment_refs().iter().any(|r| r == name))
        })
        .collect()
}

/// Creates a segment. Its current members are recorded (when it keeps a
/// membership) without firing its triggers. `listened` says whether an
/// enabled script of the workspace listens to segment events.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: i64,
    spec: SegmentSpec,
    listened: bool,
    now: DateTime<Utc>,
) -> Result<segment::Model, SegmentError> {
    let (name, folder) = clean_names(&spec)?;
    let txn = begin_write(db).await?;
    let (filter, segments) =
        check_filter(&txn, workspace_id, &spec.filter, spec.kind, Some(&name)).await?;
    if segments.all.iter().any(|s| s.name == name) {
        return Err(conflict(&name));
    }
    let on_entry = action_tags(&txn, workspace_id, &spec.on_entry).await?;
    let on_exit = action_tags(&txn, workspace_id, &spec.on_exit).await?;
    let lookup = |n: &str| segments.filter(n);
    let at = crate::time::now();
    let model = segment::ActiveModel {
        workspace_id: Set(workspace_id),
        name: Set(name.clone()),
        folder: Set(folder),
        subject_kind: Set(spec.kind),
        filter: Set(filter.to_string()),
        tracked: Set(listened || !on_entry.is_empty() || !on_exit.is_empty()),
        time_based: Set(filter.reach(&lookup).clock),
        on_entry: Set(stored_actions(&on_entry)),
        on_exit: Set(stored_actions(&on_exit)),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            conflict(&name)
        } else {
            e.into()
        }
    })?;
    if model.tracked {
        let segments = Segments::load(&txn, workspace_id).await?;
        membership::resync(&txn, workspace_id, &model, &segments, now, None).await?;
    }
    txn.commit().await?;
    Ok(model)
}

fn conflict(name: &str) -> SegmentError {
    SegmentError::Conflict(format!("a segment named {name:?} already exists"))
}

/// Replaces a segment's definition. Its members under the new filter are
/// recorded without firing.
pub async fn update(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
    spec: SegmentSpec,
    listened: bool,
    now: DateTime<Utc>,
) -> Result<segment::Model, SegmentError> {
    let (name, folder) = clean_names(&spec)?;
    let txn = begin_write(db).await?;
    let current = find(&txn, workspace_id, id)
        .await?
        .ok_or(SegmentError::NotFound("segment"))?;
    let (filter, segments) =
        check_filter(&txn, workspace_id, &spec.filter, spec.kind, Some(&name)).await?;
    if segments.all.iter().any(|s| s.name == name && s.id != id) {
        return Err(conflict(&name));
    }
    refuse_oversized_dependents(&segments, &name, &filter)?;
    let renamed = current.name != name;
    let rekinded = current.subject_kind != spec.kind;
    if (renamed || rekinded)
        && let Some(user) = dependents(&segments, &current.name).first()
    {
        return Err(SegmentError::Conflict(format!(
            "segment {:?} names {:?} through in_segment; change it first",
            user.name, current.name
        )));
    }
    let on_entry = action_tags(&txn, workspace_id, &spec.on_entry).await?;
    let on_exit = action_tags(&txn, workspace_id, &spec.on_exit).await?;
    let lookup = |n: &str| {
        if n == name { None } else { segments.filter(n) }
    };
    let time_based = filter.reach(&lookup).clock;
    let mut active = current.clone().into_active_model();
    active.name = Set(name.clone());
    active.folder = Set(folder);
    active.subject_kind = Set(spec.kind);
    active.filter = Set(filter.to_string());
    active.tracked = Set(listened || !on_entry.is_empty() || !on_exit.is_empty());
    active.time_based = Set(time_based);
    active.on_entry = Set(stored_actions(&on_entry));
    active.on_exit = Set(stored_actions(&on_exit));
    active.updated_at = Set(crate::time::now());
    let model = active.update(&txn).await.map_err(|e| {
        if is_unique_violation(&e) {
            conflict(&name)
        } else {
            e.into()
        }
    })?;
    // The members under the new definition (and of the segments naming it),
    // recorded without firing.
    let segments = Segments::load(&txn, workspace_id).await?;
    clear_membership(&txn, model.id).await?;
    if model.tracked {
        membership::resync(&txn, workspace_id, &model, &segments, now, None).await?;
    }
    for dependent in dependents(&segments, &model.name) {
        if dependent.tracked {
            membership::resync(&txn, workspace_id, dependent, &segments, now, None).await?;
        }
    }
    txn.commit().await?;
    Ok(model)
}

async fn clear_membership(db: &impl ConnectionTrait, segment_id: i64) -> Result<(), SegmentError> {
    entity::segment_membership::Entity::delete_many()
        .filter(entity::segment_membership::Column::SegmentId.eq(segment_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes a segment with its membership and history. Refused while
/// another segment names it.
pub async fn delete(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
) -> Result<bool, SegmentError> {
    let txn = begin_write(db).await?;
    let Some(current) = find(&txn, workspace_id, id).await? else {
        return Ok(false);
    };
    let segments = Segments::load(&txn, workspace_id).await?;
    let users = dependents(&segments, &current.name);
    if !users.is_empty() {
        let names: Vec<String> = users.iter().map(|s| format!("{:?}", s.name)).collect();
        let (noun, verb, pronoun) = if names.len() == 1 {
            ("segment", "names", "it")
        } else {
            ("segments", "name", "them")
        };
        return Err(SegmentError::Conflict(format!(
            "{noun} {} {verb} {:?} through in_segment; change {pronoun} first",
            names.join(", "),
            current.name
        )));
    }
    segment::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(true)
}

/// Turns stored membership on for the workspace's segments that now need
/// it (a script started listening to segment events) and off for those that
/// no longer do, recording current members silently.
pub async fn sync_tracking(
    db: &DatabaseConnection,
    workspace_id: i64,
    listened: bool,
    now: DateTime<Utc>,
) -> Result<(), SegmentError> {
    let txn = begin_write(db).await?;
    let segments = Segments::load(&txn, workspace_id).await?;
    for current in &segments.all {
        let tracked = listened || has_triggers(current);
        if tracked == current.tracked {
            continue;
        }
        let mut active = current.clone().into_active_model();
        active.tracked = Set(tracked);
        let model = active.update(&txn).await?;
        clear_membership(&txn, model.id).await?;
        if tracked {
            membership::resync(&txn, workspace_id, &model, &segments, now, None).await?;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// The segment with this id, if it is in the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<segment::Model>, SegmentError> {
    Ok(find_in_workspace::<segment::Entity>(db, workspace_id, id).await?)
}

/// Segments among `ids` that are in the workspace.
pub async fn find_many(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<segment::Model>, SegmentError> {
    Ok(find_many_in_workspace::<segment::Entity>(db, workspace_id, ids).await?)
}

/// The workspace's segments in name order, optionally of one folder.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    folder: Option<&str>,
) -> Result<Vec<segment::Model>, SegmentError> {
    let mut query = segment::Entity::find().filter(segment::Column::WorkspaceId.eq(workspace_id));
    if let Some(folder) = folder {
        query = query.filter(segment::Column::Folder.eq(folder.trim()));
    }
    Ok(query.order_by_asc(segment::Column::Name).all(db).await?)
}

/// How many rows a query of subject ids selects.
pub async fn count(
    db: &impl ConnectionTrait,
    select: sea_orm::sea_query::SelectStatement,
) -> Result<u64, SegmentError> {
    use sea_orm::sea_query::{Alias, Expr, Query};
    let query = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(select, Alias::new("m"))
        .to_owned();
    let count: i64 = match db.query_one(&query).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    };
    Ok(count as u64)
}

/// The first `limit` ids (in id order) a query of subject ids selects.
pub async fn sample(
    db: &impl ConnectionTrait,
    select: sea_orm::sea_query::SelectStatement,
    limit: u64,
) -> Result<Vec<i64>, SegmentError> {
    use sea_orm::sea_query::Order;
    let query = select
        .clone()
        .order_by(("s", "id"), Order::Asc)
        .limit(limit)
        .to_owned();
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).map_err(SegmentError::from))
        .collect()
}

fn changes_query(
    workspace_id: i64,
    segment_id: Option<i64>,
    subject: Option<(DomainKind, i64)>,
) -> sea_orm::Select<entity::segment_change::Entity> {
    use entity::segment_change;
    let mut query =
        segment_change::Entity::find().filter(segment_change::Column::WorkspaceId.eq(workspace_id));
    if let Some(segment_id) = segment_id {
        query = query.filter(segment_change::Column::SegmentId.eq(segment_id));
    }
    if let Some((kind, id)) = subject {
        query = query
            .filter(segment_change::Column::SubjectKind.eq(kind.as_str()))
            .filter(segment_change::Column::SubjectId.eq(id));
    }
    query
}

/// Entries and exits of a segment (or of all), newest first; optionally of one subject.
pub async fn changes(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment_id: Option<i64>,
    subject: Option<(DomainKind, i64)>,
    page: crate::vocab::page::PageRequest,
) -> Result<crate::vocab::page::Page<entity::segment_change::Model>, SegmentError> {
    use crate::vocab::page::{Direction, fetch};
    Ok(fetch(
        db,
        changes_query(workspace_id, segment_id, subject),
        entity::segment_change::Column::Id,
        Direction::NewestFirst,
        page,
    )
    .await?)
}

/// How many entries and exits `changes` would go through.
pub async fn count_changes(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment_id: Option<i64>,
    subject: Option<(DomainKind, i64)>,
) -> Result<u64, SegmentError> {
    use sea_orm::PaginatorTrait;
    Ok(changes_query(workspace_id, segment_id, subject)
        .count(db)
        .await?)
}

/// A day's entries into and exits from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayChanges {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub entered: i64,
    pub exited: i64,
}

/// Entries and exits of one segment per UTC day from `since` on, oldest
/// day first, counted by one GROUP BY; days without any are left out.
pub async fn changes_per_day(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment_id: i64,
    since: DateTime<Utc>,
) -> Result<Vec<DayChanges>, SegmentError> {
    use entity::segment_change::{Column, Entity};
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
    use sea_orm::{DbBackend, Iden};
    let at = Column::At.to_string();
    let op = Column::Op.to_string();
    // SQLite keeps the time as text starting with the UTC date.
    let day = match db.get_database_backend() {
        DbBackend::Postgres => format!(r#"to_char("{at}" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"#),
        _ => format!(r#"substr("{at}", 1, 10)"#),
    };
    let count_of = |which: membership::Op| {
        Expr::cust(format!(
            r#"COUNT(CASE WHEN "{op}" = '{}' THEN 1 END)"#,
            which.as_str()
        ))
    };
    let query = Query::select()
        .expr_as(Expr::cust(day.clone()), Alias::new("day"))
        .expr_as(count_of(membership::Op::Entered), Alias::new("entered"))
        .expr_as(count_of(membership::Op::Exited), Alias::new("exited"))
        .from(Entity)
        .and_where(Expr::col(Column::WorkspaceId).eq(workspace_id))
        .and_where(Expr::col(Column::SegmentId).eq(segment_id))
        .and_where(Expr::col(Column::At).gte(since))
        .add_group_by([Expr::cust(day.clone())])
        .order_by_expr(Expr::cust(day), Order::Asc)
        .to_owned();
    let mut days = Vec::new();
    for row in db.query_all(&query).await? {
        days.push(DayChanges {
            day: row.try_get("", "day")?,
            entered: row.try_get("", "entered")?,
            exited: row.try_get("", "exited")?,
        });
    }
    Ok(days)
}

/// One entry or exit of the workspace.
pub async fn find_change(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<entity::segment_change::Model>, SegmentError> {
    Ok(changes_query(workspace_id, None, None)
        .filter(entity::segment_change::Column::Id.eq(id))
        .one(db)
        .await?)
}

/// The ids a filter selects at `now`, checked against the workspace's segments.
pub async fn filter_members(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: DomainKind,
    text: &str,
    now: DateTime<Utc>,
) -> Result<sea_orm::sea_query::SelectStatement, SegmentError> {
    let (filter, segments) = check_filter(db, workspace_id, text, kind, None).await?;
    Ok(membership::members_query(
        db.get_database_backend(),
        workspace_id,
        &filter,
        &segments,
        now,
    ))
}

/// A segment's kind and the ids of its members at `now`.
pub async fn members(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment: &segment::Model,
    now: DateTime<Utc>,
) -> Result<(DomainKind, sea_orm::sea_query::SelectStatement), SegmentError> {
    let segments = Segments::load(db, workspace_id).await?;
    let filter = membership::stored_filter(segment).ok_or_else(|| {
        SegmentError::Invalid("the segment's stored filter does not parse".into())
    })?;
    let query = membership::members_query(
        db.get_database_backend(),
        workspace_id,
        &filter,
        &segments,
        now,
    );
    Ok((segment.subject_kind, query))
}

/// The segments each subject is a member of at `now` (evaluated live), by
/// name: one query per segment of the subjects' kind, whatever the number
/// of subjects. Every subject asked for has an entry, maybe empty.
pub async fn segments_of(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    subjects: &[(DomainKind, i64)],
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<(DomainKind, i64), Vec<segment::Model>>, SegmentError> {
    use sea_orm::sea_query::{Expr, ExprTrait};

    let segments = Segments::load(db, workspace_id).await?;
    let mut result: std::collections::HashMap<(DomainKind, i64), Vec<segment::Model>> =
        subjects.iter().map(|key| (*key, Vec::new())).collect();
    for segment in &segments.all {
        let kind = segment.subject_kind;
        let ids: Vec<i64> = subjects
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect();
        let Some(filter) = membership::stored_filter(segment) else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        let query = membership::members_query(
            db.get_database_backend(),
            workspace_id,
            &filter,
            &segments,
            now,
        )
        .and_where(Expr::col(("s", "id")).is_in(ids))
        .to_owned();
        for row in db.query_all(&query).await? {
            let id: i64 = row.try_get_by_index(0)?;
            if let Some(list) = result.get_mut(&(kind, id)) {
                list.push(segment.clone());
            }
        }
    }
    for list in result.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(result)
}

//! The tag catalogue: listing, counts, children, a subject's tags, descriptions.

use std::collections::HashMap;

use entity::{tag, tag_assignment};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    IntoActiveModel, Iterable, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select, Set,
};

use super::{TagError, store};
use crate::db::begin_write;
use crate::sqlite_read;
use crate::vocab::SubjectKind;
use crate::vocab::page::{Page, contains_pattern};

/// Which tags to list.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Names starting with this, exactly (`sports/`, `Department: `).
    pub prefix: Option<String>,
}

fn query(workspace_id: i64, filter: &TagFilter) -> Select<tag::Entity> {
    let mut query = tag::Entity::find()
        .filter(tag::Column::WorkspaceId.eq(workspace_id))
        .filter(tag::Column::DeletedAt.is_null());
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        query = query.filter(
            Expr::expr(Func::lower(Expr::col((tag::Entity, tag::Column::Name))))
                .like(LikeExpr::new(contains_pattern(search)).escape('\\')),
        );
    }
    if let Some(prefix) = filter.prefix.as_deref().filter(|p| !p.is_empty()) {
        // substr() compares exactly (LIKE would ignore case on SQLite).
        let length = prefix.chars().count() as i32;
        let head = Func::cust("substr")
            .arg(Expr::col((tag::Entity, tag::Column::Name)))
            .arg(1i32)
            .arg(length);
        query = query.filter(Expr::expr(head).eq(prefix));
    }
    query
}

/// One page of live tags in name order; `after` is the last name seen.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    filter: &TagFilter,
    first: u64,
    after: Option<&str>,
) -> Result<Page<tag::Model>, TagError> {
    let mut select = query(workspace_id, filter);
    if let Some(after) = after {
        select = select.filter(tag::Column::Name.gt(after));
    }
    let rows = select
        .order_by_asc(tag::Column::Name)
        .limit(first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, first))
}

pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    filter: &TagFilter,
) -> Result<u64, TagError> {
    Ok(query(workspace_id, filter).count(db).await?)
}

/// How many accounts and users carry each tag: one statement.
pub async fn counts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    tag_ids: &[i64],
) -> Result<HashMap<i64, (u64, u64)>, TagError> {
    // Per tag of the workspace, one count per kind ([`subject_count`]).
    let rows: Vec<(i64, i64, i64)> = tag::Entity::find()
        .select_only()
        .column(tag::Column::Id)
        .expr_as(subject_count(SubjectKind::Account), "accounts")
        .expr_as(subject_count(SubjectKind::User), "users")
        .filter(tag::Column::WorkspaceId.eq(workspace_id))
        .filter(tag::Column::Id.is_in(tag_ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: HashMap<i64, (u64, u64)> = tag_ids.iter().map(|id| (*id, (0, 0))).collect();
    for (tag_id, accounts, users) in rows {
        counts.insert(tag_id, (accounts as u64, users as u64));
    }
    Ok(counts)
}

/// How many subjects of `kind` carry the tag of the row (`tags.id`): an
/// index-only count over the (tag_id, subject_kind, subject_id) index, no
/// grouping of the assignments (a hash aggregate of all of them took twice
/// as long on PostgreSQL; BENCHMARKS.md, "Counting a tag's subjects").
fn subject_count(kind: SubjectKind) -> Expr {
    let count = sea_orm::sea_query::Query::select()
        .expr(Expr::col((tag_assignment::Entity, tag_assignment::Column::TagId)).count())
        .from(tag_assignment::Entity)
        .and_where(
            Expr::col((tag_assignment::Entity, tag_assignment::Column::TagId))
                .equals((tag::Entity, tag::Column::Id)),
        )
        .and_where(tag_assignment::Column::SubjectKind.eq(kind.as_str()))
        .to_owned();
    Expr::SubQuery(None, Box::new(count.into()))
}

/// The live tag with this exact name and how many (accounts, users) carry
/// it, in one statement (for `tag(name:) { userCount }`).
pub async fn find_live_with_counts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<Option<(tag::Model, (u64, u64))>, TagError> {
    let select = store::live_named(workspace_id, name)
        .expr_as(subject_count(SubjectKind::Account), "accounts")
        .expr_as(subject_count(SubjectKind::User), "users");
    let row = db
        .query_one_raw(select.build(db.get_database_backend()))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let at = tag::Column::iter().count();
    let tag = <tag::Model as sqlite_read::FromRow>::from_result(&row, 0)?;
    let accounts: i64 = row.try_get_by_index(at)?;
    let users: i64 = row.try_get_by_index(at + 1)?;
    Ok(Some((tag, (accounts as u64, users as u64))))
}

/// The live children of each tag, in name order.
pub async fn children(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    parent_ids: &[i64],
) -> Result<HashMap<i64, Vec<tag::Model>>, TagError> {
    let rows = tag::Entity::find()
        .filter(tag::Column::WorkspaceId.eq(workspace_id))
        .filter(tag::Column::DeletedAt.is_null())
        .filter(tag::Column::ParentId.is_in(parent_ids.iter().copied()))
        .order_by_asc(tag::Column::Name)
        .all(db)
        .await?;
    let mut children: HashMap<i64, Vec<tag::Model>> = HashMap::new();
    for row in rows {
        if let Some(parent) = row.parent_id {
            children.entry(parent).or_default().push(row);
        }
    }
    Ok(children)
}

/// The tags of each subject, in name order: two queries whatever the
/// number of subjects (on a SQLite file, both in one hop to the reader).
pub async fn subject_tags(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    kind: SubjectKind,
    subject_ids: &[i64],
) -> Result<HashMap<i64, Vec<tag::Model>>, TagError> {
    if subject_ids.is_empty() {
        return Ok(HashMap::new()); // no statement for nothing
    }
    let assigned = tag_assignment::Entity::find()
        .select_only()
        .column(tag_assignment::Column::SubjectId)
        .column(tag_assignment::Column::TagId)
        .filter(tag_assignment::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_assignment::Column::SubjectKind.eq(kind.as_str()))
        .filter(tag_assignment::Column::SubjectId.is_in(subject_ids.iter().copied()));
    let (assignments, tags) = match sqlite_read::reader(db) {
        Some(reader) => {
            let assigned = assigned.build(DbBackend::Sqlite);
            reader
                .run(move |conn| {
                    let assignments: Vec<(i64, i64)> =
                        sqlite_read::query(conn, &assigned, |row| Ok((row.get(0)?, row.get(1)?)))?;
                    let tag_ids = distinct_tags(&assignments);
                    let tags = match tag_ids.is_empty() {
                        true => Vec::new(),
                        false => sqlite_read::query(
                            conn,
                            &crate::db::select_in_workspace::<tag::Entity>(workspace_id, &tag_ids)
                                .build(DbBackend::Sqlite),
                            <tag::Model as sqlite_read::FromRow>::from_row,
                        )?,
                    };
                    Ok((assignments, tags))
                })
                .await?
        }
        None if db.get_database_backend() == DbBackend::Postgres => {
            tags_with_subjects(db, workspace_id, kind, subject_ids).await?
        }
        None => {
            let assignments: Vec<(i64, i64)> = assigned.into_tuple().all(db).await?;
            let tags = store::find_many(db, workspace_id, &distinct_tags(&assignments)).await?;
            (assignments, tags)
        }
    };
    let tags: HashMap<i64, tag::Model> = tags.into_iter().map(|t| (t.id, t)).collect();
    let mut result: HashMap<i64, Vec<tag::Model>> = HashMap::new();
    for (subject, tag_id) in assignments {
        if let Some(tag) = tags.get(&tag_id) {
            result.entry(subject).or_default().push(tag.clone());
        }
    }
    for list in result.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(result)
}

/// [`subject_tags`]' (subject, tag) pairs and tags on PostgreSQL in one
/// statement (a join), where the file reader of SQLite makes two in one hop.
/// A tag's row comes once per subject that carries it and is decoded the
/// first time only. (An aggregate of each tag's subjects as an array, bound
/// as one array, cost PostgreSQL more: it planned the statement anew on each
/// execution; BENCHMARKS.md, "PostgreSQL read path".)
async fn tags_with_subjects(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    kind: SubjectKind,
    subject_ids: &[i64],
) -> Result<(Vec<(i64, i64)>, Vec<tag::Model>), TagError> {
    let assigned = tag_assignment::Entity::belongs_to(tag::Entity)
        .from(tag_assignment::Column::TagId)
        .to(tag::Column::Id)
        .into();
    let select = tag::Entity::find()
        .select_only()
        .column(tag_assignment::Column::SubjectId)
        .columns(tag::Column::iter())
        .join_rev(JoinType::InnerJoin, assigned)
        .filter(tag::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_assignment::Column::WorkspaceId.eq(workspace_id))
        .filter(tag_assignment::Column::SubjectKind.eq(kind.as_str()))
        .filter(tag_assignment::Column::SubjectId.is_in(subject_ids.iter().copied()));
    let rows = db
        .query_all_raw(select.build(db.get_database_backend()))
        .await?;
    let mut assignments = Vec::with_capacity(rows.len());
    let mut tags: HashMap<i64, tag::Model> = HashMap::new();
    for row in &rows {
        let subject: i64 = row.try_get_by_index(0)?;
        let tag_id: i64 = row.try_get_by_index(1)?;
        assignments.push((subject, tag_id));
        if let std::collections::hash_map::Entry::Vacant(entry) = tags.entry(tag_id) {
            entry.insert(<tag::Model as sqlite_read::FromRow>::from_result(row, 1)?);
        }
    }
    Ok((assignments, tags.into_values().collect()))
}

/// The tag ids of (subject, tag) pairs, once each.
fn distinct_tags(assignments: &[(i64, i64)]) -> Vec<i64> {
    let mut tag_ids: Vec<i64> = assignments.iter().map(|(_, tag)| *tag).collect();
    tag_ids.sort_unstable();
    tag_ids.dedup();
    tag_ids
}

/// Sets (or clears, with `None` or blank text) a tag's description.
pub async fn set_description(
    db: &DatabaseConnection,
    workspace_id: i64,
    name: &str,
    description: Option<String>,
) -> Result<tag::Model, TagError> {
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return Err(TagError::Invalid(
            "a description is at most 2000 characters".into(),
        ));
    }
    let txn = begin_write(db).await?;
    let tag = store::get_live(&txn, workspace_id, name).await?;
    let mut active = tag.into_active_model();
    active.description = Set(description);
    let tag = active.update(&txn).await?;
    txn.commit().await?;
    Ok(tag)
}

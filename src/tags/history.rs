//! The history of tag changes, newest first.

use entity::tag_change;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Select};

use super::TagError;
use crate::db::{find_in_workspace, find_many_in_workspace};
use crate::vocab::SubjectKind;
use crate::vocab::page::{Direction, Page, PageRequest, fetch};

/// Which changes to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryScope {
    pub tag_id: Option<i64>,
    pub subject: Option<(SubjectKind, i64)>,
}

fn query(workspace_id: i64, scope: HistoryScope) -> Select<tag_change::Entity> {
    let mut query =
        tag_change::Entity::find().filter(tag_change::Column::WorkspaceId.eq(workspace_id));
    if let Some(tag_id) = scope.tag_id {
        query = query.filter(tag_change::Column::TagId.eq(tag_id));
    }
    if let Some((kind, id)) = scope.subject {
        query = query
            .filter(tag_change::Column::SubjectKind.eq(kind.as_str()))
            .filter(tag_change::Column::SubjectId.eq(id));
    }
    query
}

/// One change by id, if it is in the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<tag_change::Model>, TagError> {
    Ok(find_in_workspace::<tag_change::Entity>(db, workspace_id, id).await?)
}

/// Changes by id (for the worker).
pub async fn find_many(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<tag_change::Model>, TagError> {
    Ok(find_many_in_workspace::<tag_change::Entity>(db, workspace_id, ids).await?)
}

/// One page of changes, newest first; `after` is the id of the last change seen.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    scope: HistoryScope,
    page: PageRequest,
) -> Result<Page<tag_change::Model>, TagError> {
    let select = query(workspace_id, scope);
    Ok(fetch(
        db,
        select,
        tag_change::Column::Id,
        Direction::NewestFirst,
        page,
    )
    .await?)
}

pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    scope: HistoryScope,
) -> Result<u64, TagError> {
    Ok(query(workspace_id, scope).count(db).await?)
}

//! Reading the outbox's events (for operators: what is pending, what failed).

use entity::automation_event;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::AutomationError;
use crate::subjects::page::{Page, PageRequest};

fn query(workspace_id: i64, status: Option<&str>) -> Select<automation_event::Entity> {
    let mut query = automation_event::Entity::find()
        .filter(automation_event::Column::WorkspaceId.eq(workspace_id));
    if let Some(status) = status {
        query = query.filter(automation_event::Column::Status.eq(status));
    }
    query
}

/// One event of the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<automation_event::Model>, AutomationError> {
    Ok(query(workspace_id, None)
        .filter(automation_event::Column::Id.eq(id))
        .one(db)
        .await?)
}

/// A page of events, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    status: Option<&str>,
    page: PageRequest,
) -> Result<Page<automation_event::Model>, AutomationError> {
    let mut select = query(workspace_id, status);
    if let Some(after) = page.after {
        select = select.filter(automation_event::Column::Id.lt(after));
    }
    let rows = select
        .order_by_desc(automation_event::Column::Id)
        .limit(page.first + 1)
        .all(db)
        .await?;
    Ok(Page::from_overfetch(rows, page.first))
}

pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    status: Option<&str>,
) -> Result<u64, AutomationError> {
    Ok(query(workspace_id, status).count(db).await?)
}

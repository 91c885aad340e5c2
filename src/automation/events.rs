//! Reading the outbox's events (for operators: what is pending, what failed).

use entity::automation_event;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Select};

use super::AutomationError;
use crate::subjects::page::{Direction, Page, PageRequest, fetch};
use crate::vocab::EventStatus;

fn query(workspace_id: i64, status: Option<EventStatus>) -> Select<automation_event::Entity> {
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
    status: Option<EventStatus>,
    page: PageRequest,
) -> Result<Page<automation_event::Model>, AutomationError> {
    let select = query(workspace_id, status);
    Ok(fetch(
        db,
        select,
        automation_event::Column::Id,
        Direction::NewestFirst,
        page,
    )
    .await?)
}

pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    status: Option<EventStatus>,
) -> Result<u64, AutomationError> {
    Ok(query(workspace_id, status).count(db).await?)
}

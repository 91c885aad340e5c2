//! The delivery log of a webhook, and sending again on demand.

use chrono::{DateTime, Utc};
use entity::webhook_delivery::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect,
};

use super::{WebhookError, enqueue, store};
use crate::db::find_in_workspace;
use crate::subjects::page::{Direction, Page, PageRequest, fetch};
use crate::vocab::DeliveryStatus;

/// Which deliveries a list shows.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub workspace_id: i64,
    pub webhook_id: i64,
    /// PENDING, SUCCEEDED or FAILED; all when `None`.
    pub status: Option<DeliveryStatus>,
}

fn select(scope: Scope) -> sea_orm::Select<webhook_delivery::Entity> {
    let select = webhook_delivery::Entity::find()
        .filter(Column::WorkspaceId.eq(scope.workspace_id))
        .filter(Column::WebhookId.eq(scope.webhook_id));
    match scope.status {
        Some(status) => select.filter(Column::Status.eq(status)),
        None => select,
    }
}

/// A page of a webhook's deliveries, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: Scope,
    page: PageRequest,
) -> Result<Page<webhook_delivery::Model>, WebhookError> {
    Ok(fetch(db, select(scope), Column::Id, Direction::NewestFirst, page).await?)
}

/// How many deliveries [`list`] pages through.
pub async fn count(db: &impl ConnectionTrait, scope: Scope) -> Result<u64, WebhookError> {
    Ok(select(scope).count(db).await?)
}

/// One delivery of the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<webhook_delivery::Model>, WebhookError> {
    Ok(find_in_workspace::<webhook_delivery::Entity>(db, workspace_id, id).await?)
}

/// Queues one delivery again, whatever its status, with the same message
/// id. Its attempts keep counting: one that has used the retry schedule
/// gets this one attempt.
pub async fn redeliver(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
    now: DateTime<Utc>,
) -> Result<webhook_delivery::Model, WebhookError> {
    find(db, workspace_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook delivery"))?;
    let txn = crate::db::begin_write(db).await?;
    webhook_delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::value(DeliveryStatus::Pending))
        .col_expr(Column::NextAttemptAt, Expr::value(Some(now)))
        .filter(Column::WorkspaceId.eq(workspace_id))
        .filter(Column::Id.eq(id))
        .exec(&*txn)
        .await?;
    txn.commit().await?;
    find(db, workspace_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook delivery"))
}

/// Queues again every FAILED delivery of the webhook made since `since`;
/// returns how many. (Pending ones are queued already.)
pub async fn replay(
    db: &DatabaseConnection,
    workspace_id: i64,
    webhook_id: i64,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    store::get(db, workspace_id, webhook_id).await?;
    let txn = crate::db::begin_write(db).await?;
    let replayed = webhook_delivery::Entity::update_many()
        .col_expr(Column::Status, Expr::value(DeliveryStatus::Pending))
        .col_expr(Column::NextAttemptAt, Expr::value(Some(now)))
        .filter(Column::WorkspaceId.eq(workspace_id))
        .filter(Column::WebhookId.eq(webhook_id))
        .filter(Column::Status.eq(DeliveryStatus::Failed))
        .filter(Column::CreatedAt.gte(since))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(replayed)
}

/// Queues a `webhook.ping` to an enabled webhook now; returns its delivery.
pub async fn test(
    db: &DatabaseConnection,
    workspace_id: i64,
    webhook_id: i64,
    now: DateTime<Utc>,
) -> Result<webhook_delivery::Model, WebhookError> {
    let webhook = store::get(db, workspace_id, webhook_id).await?;
    if !webhook.enabled {
        return Err(WebhookError::Invalid(
            "the webhook is disabled: enable it (updateWebhook) to send it a test".into(),
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    let ping = enqueue::ping(&*txn, &webhook, now).await?;
    txn.commit().await?;
    Ok(ping)
}

/// The creation time of the oldest pending delivery of an enabled webhook,
/// and how many are pending (`/metrics`).
pub async fn backlog(
    db: &impl ConnectionTrait,
) -> Result<(u64, Option<DateTime<Utc>>), WebhookError> {
    let pending =
        webhook_delivery::Entity::find().filter(Column::Status.eq(DeliveryStatus::Pending));
    let count = pending.clone().count(db).await?;
    let oldest: Option<Option<DateTime<Utc>>> = pending
        .select_only()
        .column_as(Column::CreatedAt.min(), "oldest")
        .into_tuple()
        .one(db)
        .await?;
    Ok((count, oldest.flatten()))
}

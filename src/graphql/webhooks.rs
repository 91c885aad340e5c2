//! GraphQL types and operations of webhooks (ADMIN only): thin resolvers
//! over `crate::webhooks`.

use std::sync::Arc;

use super::Result;
use async_graphql::{Context, Enum, ID, InputObject, Object, types::Json};
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_delivery};
use serde_json::Value;

use crate::auth::Role;
use crate::error::ApiError;
use crate::webhooks::{self as domain, EventType, deliveries, store};

use super::connection::{CountedConnection, TotalCount, connection, page_complexity, page_request};
use super::context::{require, state};
use super::ids::{self, NodeKind};

/// What a webhook can be told about.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookEventType {
    /// `tag.added`: a tag was added to a subject.
    TagAdded,
    /// `tag.removed`: a tag was removed from a subject.
    TagRemoved,
    /// `segment.entered`: a subject entered a segment with stored membership.
    SegmentEntered,
    /// `segment.exited`: a subject left such a segment.
    SegmentExited,
    /// `script.failed`: a script run failed (its error, the script, the subject).
    ScriptFailed,
}

impl From<WebhookEventType> for EventType {
    fn from(kind: WebhookEventType) -> Self {
        match kind {
            WebhookEventType::TagAdded => EventType::TagAdded,
            WebhookEventType::TagRemoved => EventType::TagRemoved,
            WebhookEventType::SegmentEntered => EventType::SegmentEntered,
            WebhookEventType::SegmentExited => EventType::SegmentExited,
            WebhookEventType::ScriptFailed => EventType::ScriptFailed,
        }
    }
}

impl From<EventType> for WebhookEventType {
    fn from(kind: EventType) -> Self {
        match kind {
            EventType::TagAdded => WebhookEventType::TagAdded,
            EventType::TagRemoved => WebhookEventType::TagRemoved,
            EventType::SegmentEntered => WebhookEventType::SegmentEntered,
            EventType::SegmentExited => WebhookEventType::SegmentExited,
            EventType::ScriptFailed => WebhookEventType::ScriptFailed,
        }
    }
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::vocab::DeliveryStatus")]
pub enum DeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// A 2xx answer was received.
    Succeeded,
    /// No attempt succeeded and none is left (or the webhook answered 410).
    Failed,
}

/// A webhook: where tagsmith POSTs the events it asks for, signed as the
/// Standard Webhooks spec says.
pub struct Webhook(pub Arc<webhook::Model>);

impl From<webhook::Model> for Webhook {
    fn from(model: webhook::Model) -> Self {
        Webhook(Arc::new(model))
    }
}

#[Object]
impl Webhook {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Webhook, self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn events(&self) -> Vec<WebhookEventType> {
        domain::events_of(&self.0)
            .into_iter()
            .map(Into::into)
            .collect()
    }
    /// Only changes of tags that match one of these ('VIP', 'Region: *', 'sports/*'); every tag when empty.
    async fn tags(&self) -> Vec<String> {
        domain::tags_of(&self.0)
    }
    /// Only enabled webhooks receive events (a 410 Gone answer disables one).
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The delivery log, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<DeliveryStatus>,
    ) -> Result<CountedConnection<WebhookDelivery>> {
        let caller = require(ctx, Role::Admin)?;
        let request = page_request(first, after)?;
        let db = state(ctx)?.db.clone();
        let status = status.map(Into::into);
        let scope = deliveries::Scope {
            workspace_id: caller.workspace_id,
            webhook_id: self.0.id,
            status,
        };
        let page = deliveries::list(&db, scope, request).await?;
        let (workspace_id, webhook_id) = (caller.workspace_id, self.0.id);
        let total = TotalCount::new(move || {
            let db = db.clone();
            async move {
                let scope = deliveries::Scope {
                    workspace_id,
                    webhook_id,
                    status,
                };
                Ok(deliveries::count(&db, scope).await?)
            }
        });
        let parent = Arc::clone(&self.0);
        Ok(connection(
            page,
            request,
            |d| d.id,
            |d| WebhookDelivery {
                delivery: d,
                webhook: Some(Arc::clone(&parent)),
            },
            total,
        ))
    }
}

/// A webhook with its secret, which is shown only here.
pub struct WebhookCreated {
    webhook: Arc<webhook::Model>,
    secret: String,
}

#[Object]
impl WebhookCreated {
    async fn webhook(&self) -> Webhook {
        Webhook(Arc::clone(&self.webhook))
    }
    /// whsec_ followed by base64; shown once.
    async fn secret(&self) -> &str {
        &self.secret
    }
}

impl From<store::Created> for WebhookCreated {
    fn from(created: store::Created) -> Self {
        WebhookCreated {
            webhook: Arc::new(created.webhook),
            secret: created.secret,
        }
    }
}

/// One message to one webhook, and how its attempts went.
pub struct WebhookDelivery {
    pub delivery: webhook_delivery::Model,
    /// Its webhook, when already at hand.
    pub webhook: Option<Arc<webhook::Model>>,
}

#[Object]
impl WebhookDelivery {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::WebhookDelivery, self.delivery.id)
    }
    async fn webhook(&self, ctx: &Context<'_>) -> Result<Webhook> {
        if let Some(webhook) = &self.webhook {
            return Ok(Webhook(Arc::clone(webhook)));
        }
        let caller = require(ctx, Role::Admin)?;
        let webhook = store::get(
            &state(ctx)?.db,
            caller.workspace_id,
            self.delivery.webhook_id,
        )
        .await?;
        Ok(Webhook::from(webhook))
    }
    /// The webhook-id header: the same on every attempt of this message.
    async fn message_id(&self) -> &str {
        &self.delivery.message_id
    }
    /// `tag.added`, `tag.removed`, `segment.entered`, `segment.exited`, `script.failed` or `webhook.ping`.
    async fn event_type(&self) -> &str {
        &self.delivery.event_type
    }
    /// The body sent: `{"type", "timestamp", "data"}`.
    async fn payload(&self) -> Json<Value> {
        Json(self.delivery.payload.clone())
    }
    async fn status(&self) -> DeliveryStatus {
        self.delivery.status.into()
    }
    /// Attempts made so far.
    async fn attempts(&self) -> i32 {
        self.delivery.attempts
    }
    /// The HTTP status of the last answer (none when there was no answer).
    async fn last_status_code(&self) -> Option<i32> {
        self.delivery.last_status_code
    }
    /// Why the last attempt failed: the status and the start of the answer, or the connection error.
    async fn last_error(&self) -> Option<&str> {
        self.delivery.last_error.as_deref()
    }
    /// When a pending delivery is tried next.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        match self.delivery.status {
            crate::vocab::DeliveryStatus::Pending => self.delivery.next_attempt_at,
            _ => None,
        }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.delivery.created_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.delivery.delivered_at
    }
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(delivery: webhook_delivery::Model) -> Self {
        WebhookDelivery {
            delivery,
            webhook: None,
        }
    }
}

/// A webhook to create or update.
#[derive(InputObject)]
pub struct WebhookInput {
    /// https:// (http:// only to hosts the server's allow-list names).
    url: String,
    events: Vec<WebhookEventType>,
    tags: Option<Vec<String>>,
    enabled: Option<bool>,
    description: Option<String>,
}

impl From<WebhookInput> for domain::WebhookInput {
    fn from(input: WebhookInput) -> Self {
        domain::WebhookInput {
            url: input.url,
            events: input.events.into_iter().map(Into::into).collect(),
            tags: input.tags,
            enabled: input.enabled,
            description: input.description,
        }
    }
}

/// A webhook of the caller's workspace, for `node`.
pub async fn find_webhook(
    ctx: &Context<'_>,
    workspace_id: i64,
    id: i64,
) -> Result<Option<Webhook>> {
    Ok(store::find(&state(ctx)?.db, workspace_id, id)
        .await?
        .map(Webhook::from))
}

/// A delivery of the caller's workspace, for `node`.
pub async fn find_delivery(
    ctx: &Context<'_>,
    workspace_id: i64,
    id: i64,
) -> Result<Option<WebhookDelivery>> {
    Ok(deliveries::find(&state(ctx)?.db, workspace_id, id)
        .await?
        .map(WebhookDelivery::from))
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The workspace's webhooks, oldest first (ADMIN).
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<Webhook>> {
        let caller = require(ctx, Role::Admin)?;
        Ok(store::list(&state(ctx)?.db, caller.workspace_id)
            .await?
            .into_iter()
            .map(Webhook::from)
            .collect())
    }

    /// One webhook (ADMIN); null when your workspace has none with this id.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Webhook>> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        find_webhook(ctx, caller.workspace_id, id).await
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// ADMIN. The secret (whsec_...) is shown once.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: WebhookInput,
    ) -> Result<WebhookCreated> {
        let caller = require(ctx, Role::Admin)?;
        let app = state(ctx)?;
        let created = store::create(
            &app.db,
            caller.workspace_id,
            input.into(),
            &app.webhooks.allow,
            crate::time::now(),
        )
        .await?;
        Ok(created.into())
    }

    /// ADMIN. Replaces the URL and events; tags, enabled and description when given.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookInput,
    ) -> Result<Webhook> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        let app = state(ctx)?;
        let webhook = store::update(
            &app.db,
            caller.workspace_id,
            id,
            input.into(),
            &app.webhooks.allow,
            crate::time::now(),
        )
        .await?;
        // Enabled again: its waiting deliveries go out.
        app.webhook_wake.notify_one();
        Ok(Webhook::from(webhook))
    }

    /// ADMIN. Deletes the webhook and its delivery log.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        let deleted = store::delete(&state(ctx)?.db, caller.workspace_id, id).await?;
        if !deleted {
            return Err(ApiError::not_found("webhook not found"));
        }
        Ok(true)
    }

    /// A new secret; the old one keeps signing beside it for 24 hours.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookCreated> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        let created =
            store::rotate_secret(&state(ctx)?.db, caller.workspace_id, id, crate::time::now())
                .await?;
        Ok(created.into())
    }

    /// Sends a ping event now and returns its delivery.
    async fn test_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        let app = state(ctx)?;
        let delivery =
            deliveries::test(&app.db, caller.workspace_id, id, crate::time::now()).await?;
        app.webhook_wake.notify_one();
        Ok(delivery.into())
    }

    /// Queues one delivery again, whatever its status.
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> Result<WebhookDelivery> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&delivery_id, NodeKind::WebhookDelivery)?;
        let app = state(ctx)?;
        let delivery =
            deliveries::redeliver(&app.db, caller.workspace_id, id, crate::time::now()).await?;
        app.webhook_wake.notify_one();
        Ok(delivery.into())
    }

    /// Queues again every delivery of this webhook made since then that did not succeed; returns how many.
    async fn replay_webhook(&self, ctx: &Context<'_>, id: ID, since: DateTime<Utc>) -> Result<i32> {
        let caller = require(ctx, Role::Admin)?;
        let id = ids::decode_as(&id, NodeKind::Webhook)?;
        let app = state(ctx)?;
        let count =
            deliveries::replay(&app.db, caller.workspace_id, id, since, crate::time::now()).await?;
        app.webhook_wake.notify_one();
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }
}

//! Webhooks: tag, segment and script events POSTed to other systems, signed
//! as the Standard Webhooks spec says, retried, logged and replayable.
//!
//! Pure: `signature` (secrets, message ids, `v1,` signatures), `target`
//! (which URLs and addresses may be reached), `schedule` (retry delays,
//! `Retry-After`, what an answer means), `payload` (the bodies). With IO:
//! `store` (webhooks: create, update, rotate, delete), `deliveries` (the
//! delivery log, redeliver, replay, ping), `enqueue` (delivery rows from the
//! outbox, in the automation worker's transaction) and `dispatch` (the task
//! that sends due deliveries, each webhook with its own concurrency cap).
//!
//! Invariant: every function takes the caller's `workspace_id` (or works on
//! rows that carry it); no async-graphql or axum here. Boundary: `graphql/`
//! calls `store` and `deliveries`; the automation worker calls `enqueue`;
//! `graphql::AppState` starts `dispatch`.

pub mod deliveries;
pub mod dispatch;
pub mod enqueue;
pub mod payload;
pub mod schedule;
pub mod signature;
pub mod store;
pub mod target;

use serde::Deserialize;

use crate::error::{Code, DbCause, ErrorCode};
use crate::vocab::EventKind;

/// Errors of the webhooks domain.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("no randomness for a secret: {0}")]
    NoRandomness(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ErrorCode for WebhookError {
    fn code(&self) -> Code {
        match self {
            WebhookError::Invalid(_) => Code::BadUserInput,
            WebhookError::NotFound(_) => Code::NotFound,
            WebhookError::NoRandomness(_) | WebhookError::Db(_) => Code::Internal,
        }
    }
}

impl DbCause for WebhookError {
    fn into_db(self) -> Result<sea_orm::DbErr, Self> {
        match self {
            WebhookError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

/// The events a webhook can ask for, as `webhooks.events` stores them
/// (`TAG_ADDED`, ...: the words of the outbox's kinds, and `SCRIPT_FAILED`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    TagAdded,
    TagRemoved,
    SegmentEntered,
    SegmentExited,
    ScriptFailed,
}

impl EventType {
    /// The outbox events of this type (none for `SCRIPT_FAILED`, which
    /// the worker reports of its script runs).
    pub fn outbox_kind(self) -> Option<EventKind> {
        match self {
            EventType::TagAdded => Some(EventKind::TagAdded),
            EventType::TagRemoved => Some(EventKind::TagRemoved),
            EventType::SegmentEntered => Some(EventKind::SegmentEntered),
            EventType::SegmentExited => Some(EventKind::SegmentExited),
            EventType::ScriptFailed => None,
        }
    }

    /// The `type` of the message on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            EventType::TagAdded => "tag.added",
            EventType::TagRemoved => "tag.removed",
            EventType::SegmentEntered => "segment.entered",
            EventType::SegmentExited => "segment.exited",
            EventType::ScriptFailed => "script.failed",
        }
    }

    /// Whether the webhook's tag patterns filter this event.
    pub fn is_tag_event(self) -> bool {
        matches!(self, EventType::TagAdded | EventType::TagRemoved)
    }
}

/// The webhook event of an outbox event.
impl From<EventKind> for EventType {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::TagAdded => EventType::TagAdded,
            EventKind::TagRemoved => EventType::TagRemoved,
            EventKind::SegmentEntered => EventType::SegmentEntered,
            EventKind::SegmentExited => EventType::SegmentExited,
        }
    }
}

/// The `type` of the message `testWebhook` sends.
pub const PING: &str = "webhook.ping";

/// What a client gives to create or update a webhook.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub url: String,
    pub events: Vec<EventType>,
    pub tags: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// The events and tag patterns a stored webhook asks for.
pub fn events_of(webhook: &entity::webhook::Model) -> Vec<EventType> {
    webhook
        .events
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| EventType::deserialize(v).ok())
        .collect()
}

/// The tag patterns of a stored webhook (every tag when empty).
pub fn tags_of(webhook: &entity::webhook::Model) -> Vec<String> {
    webhook
        .tags
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// Whether a webhook wants an event of this type about this tag (`None`
/// for events without one).
pub fn wants(webhook: &entity::webhook::Model, event: EventType, tag: Option<&str>) -> bool {
    if !webhook.enabled || !events_of(webhook).contains(&event) {
        return false;
    }
    if !event.is_tag_event() {
        return true;
    }
    let patterns = tags_of(webhook);
    patterns.is_empty()
        || tag.is_some_and(|name| {
            patterns
                .iter()
                .any(|p| crate::tags::pattern::tag_matches(p, name))
        })
}

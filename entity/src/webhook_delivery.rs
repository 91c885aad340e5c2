use sea_orm::entity::prelude::*;

/// One message to one webhook and the state of its attempts.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub webhook_id: i64,
    /// The `webhook-id` header, the same on every attempt.
    pub message_id: String,
    /// `tag.added`, `segment.entered`, `webhook.ping`, ...
    pub event_type: String,
    /// The body sent: `{"type", "timestamp", "data"}`.
    pub payload: Json,
    /// The subject the event is about (its deliveries go out in order).
    pub subject_kind: Option<crate::vocab::SubjectKind>,
    pub subject_id: Option<i64>,
    /// PENDING, SUCCEEDED or FAILED.
    pub status: crate::vocab::DeliveryStatus,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// When a pending delivery is due (or, while an attempt runs, when its claim ends).
    pub next_attempt_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

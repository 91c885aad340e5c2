use sea_orm::entity::prelude::*;

/// The outbox: one row per tag change or segment entry/exit, written in the
/// same transaction as the change, consumed by the automation worker.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "automation_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// TAG_ADDED, TAG_REMOVED, SEGMENT_ENTERED or SEGMENT_EXITED.
    pub kind: crate::vocab::EventKind,
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    pub tag_id: Option<i64>,
    pub segment_id: Option<i64>,
    /// The tag change this event announces.
    pub change_id: Option<i64>,
    /// How many automated steps led here (0 for a change made through the API).
    pub depth: i32,
    pub cause_id: Option<i64>,
    /// pending, running, done or failed.
    pub status: crate::vocab::EventStatus,
    pub attempts: i32,
    pub run_at: DateTimeUtc,
    pub locked_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

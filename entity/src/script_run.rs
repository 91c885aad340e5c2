use sea_orm::entity::prelude::*;

/// One run of one script's hook for one automation event.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "script_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub script_id: i64,
    pub script_version: i32,
    pub event_id: i64,
    /// TAG_ADDED, TAG_REMOVED, SEGMENT_ENTERED or SEGMENT_EXITED.
    pub event_kind: crate::vocab::EventKind,
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    pub ok: bool,
    pub error: Option<String>,
    /// JSON array of strings.
    pub logs: Json,
    /// JSON array of planned actions.
    pub actions: Json,
    pub duration_micros: i64,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

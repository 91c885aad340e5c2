use sea_orm::entity::prelude::*;

/// The append-only history of tag assignments.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tag_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// ADDED or REMOVED.
    pub op: crate::vocab::Op,
    pub tag_id: i64,
    /// ACCOUNT or USER.
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    /// MANUAL, BULK, IMPORT, TRIGGER or SCRIPT.
    pub source: crate::vocab::Source,
    /// The API key, script or segment that made the change.
    pub actor: Option<String>,
    /// The tag change that led to this one, when automated.
    pub cause_id: Option<i64>,
    /// The segment entry or exit that led to this one, when a trigger or a
    /// segment hook made it.
    pub cause_segment_change_id: Option<i64>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

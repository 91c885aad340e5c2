use sea_orm::entity::prelude::*;

/// A tag on a subject (an account or a user); one per (tag, subject).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tag_assignments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub tag_id: i64,
    /// ACCOUNT or USER.
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    /// MANUAL, BULK, IMPORT, TRIGGER or SCRIPT.
    pub source: crate::vocab::Source,
    pub actor: Option<String>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

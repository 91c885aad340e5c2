use sea_orm::entity::prelude::*;

/// A tracked activity of a subject (`trackEvent`), read by the filters
/// `events(name, 30d)` and `active_days(30d)`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// ACCOUNT or USER.
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    pub name: String,
    pub at: DateTimeUtc,
    pub properties: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

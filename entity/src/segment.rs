use sea_orm::entity::prelude::*;

/// A saved filter over accounts or users, with tags to add and remove when
/// subjects enter and leave it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "segments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub name: String,
    pub folder: Option<String>,
    /// ACCOUNT or USER.
    pub subject_kind: crate::vocab::SubjectKind,
    /// The filter's canonical text.
    pub filter: String,
    /// `{"add": [...], "remove": [...]}` applied on entry.
    pub on_entry: Json,
    /// `{"add": [...], "remove": [...]}` applied on exit.
    pub on_exit: Json,
    /// Whether the membership is stored (the segment has triggers, or a
    /// script listens to segment events).
    pub tracked: bool,
    /// Whether the filter reads the clock (`now`, `events`, `active_days`),
    /// so that the sweep re-evaluates it as time passes.
    pub time_based: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

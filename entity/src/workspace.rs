use sea_orm::entity::prelude::*;

/// A tenant: every other row belongs to exactly one workspace.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "workspaces")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// Reject tag names with capitals.
    pub lowercase_tags: bool,
    /// Maximum number of `/`-separated levels in a tag name.
    pub max_tag_depth: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

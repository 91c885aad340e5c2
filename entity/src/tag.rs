use sea_orm::entity::prelude::*;

/// A tag of a workspace. Deleted tags keep their row (history refers to it)
/// with `deleted_at` set; a name is unique among live tags.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tags")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// The full name as written.
    pub name: String,
    /// `Region` of the key:value tag `Region: Northeast`.
    pub key: Option<String>,
    pub value: Option<String>,
    /// The tag one level up (`a/b` for `a/b/c`).
    pub parent_id: Option<i64>,
    pub description: Option<String>,
    pub created_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

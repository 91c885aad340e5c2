use sea_orm::entity::prelude::*;

/// A person (contact), optionally belonging to an account.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    /// Unique per workspace when present.
    pub external_id: Option<String>,
    /// Trimmed; unique per workspace.
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account_id: Option<i64>,
    /// Always a JSON object.
    pub attributes: Json,
    pub last_seen_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

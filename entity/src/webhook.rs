use sea_orm::entity::prelude::*;

/// An outgoing webhook of a workspace: where to POST which events.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub url: String,
    /// The event types it wants: a JSON array of TAG_ADDED, TAG_REMOVED, ...
    pub events: Json,
    /// Tag patterns (JSON array of strings); every tag when empty.
    pub tags: Json,
    pub enabled: bool,
    pub description: Option<String>,
    /// `whsec_` + base64 of the signing key (kept so the server can sign).
    pub secret: String,
    /// The secret before the last rotation, signing beside the new one until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

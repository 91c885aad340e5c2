//! Workspaces: the tenants.

use entity::workspace;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, Set,
};

use super::AuthError;
use crate::time::now;

/// The name of the workspace created on first start.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Creates a workspace with default settings.
pub async fn create(db: &impl ConnectionTrait, name: &str) -> Result<workspace::Model, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AuthError::BadInput(
            "a workspace name is 1 to 100 characters, without control characters".into(),
        ));
    }
    if find_by_name(db, name).await?.is_some() {
        return Err(AuthError::WorkspaceExists(name.to_owned()));
    }
    let model = workspace::ActiveModel {
        name: Set(name.to_owned()),
        lowercase_tags: Set(false),
        max_tag_depth: Set(3),
        created_at: Set(now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(model)
}

pub async fn find_by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<workspace::Model>, AuthError> {
    Ok(workspace::Entity::find()
        .filter(workspace::Column::Name.eq(name))
        .one(db)
        .await?)
}

pub async fn find(db: &impl ConnectionTrait, id: i64) -> Result<workspace::Model, AuthError> {
    workspace::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AuthError::UnknownWorkspace(id.to_string()))
}

/// Changes the tag rules of a workspace; `None` keeps a setting.
pub async fn update_settings(
    db: &impl ConnectionTrait,
    id: i64,
    lowercase_tags: Option<bool>,
    max_tag_depth: Option<i32>,
) -> Result<workspace::Model, AuthError> {
    if let Some(depth) = max_tag_depth
        && !(1..=10).contains(&depth)
    {
        return Err(AuthError::BadInput(format!(
            "maxTagDepth must be between 1 and 10, not {depth}"
        )));
    }
    let current = find(db, id).await?;
    let mut active = current.into_active_model();
    if let Some(lowercase) = lowercase_tags {
        active.lowercase_tags = Set(lowercase);
    }
    if let Some(depth) = max_tag_depth {
        active.max_tag_depth = Set(depth);
    }
    Ok(active.update(db).await?)
}

/// Whether the database holds no workspace yet (a first start).
pub async fn is_empty(db: &impl ConnectionTrait) -> Result<bool, AuthError> {
    Ok(workspace::Entity::find().count(db).await? == 0)
}

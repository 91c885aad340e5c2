//! GraphQL operations on API keys and the caller.

use super::Result;
use async_graphql::{Context, Enum, Object, SimpleObject};

use crate::auth::{self, keys, workspaces};

use super::context::{require, state};

/// What a key may do; each role includes those below it.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::auth::Role")]
pub enum Role {
    /// Everything, including API keys and workspace settings.
    Admin,
    /// Scripts, tags, segments, bulk operations.
    Developer,
    /// Read, tag single subjects, preview segments (creating a segment needs DEVELOPER).
    Member,
    /// Read only.
    Viewer,
}

/// A key just created.
#[derive(SimpleObject)]
pub struct ApiKeyCreated {
    name: String,
    role: Role,
    /// Shown once; only a hash is stored.
    secret: String,
}

/// The key making the request.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The key's name.
    key_name: String,
    role: Role,
    /// The workspace the key belongs to.
    workspace: String,
}

/// Your workspace and its settings.
#[derive(SimpleObject)]
pub struct Workspace {
    name: String,
    /// When true, tag names with capital letters are refused.
    lowercase_tags: bool,
    /// Most levels in a hierarchical tag name (`a/b/c` has 3).
    max_tag_depth: i32,
}

impl From<entity::workspace::Model> for Workspace {
    fn from(ws: entity::workspace::Model) -> Self {
        Workspace {
            name: ws.name,
            lowercase_tags: ws.lowercase_tags,
            max_tag_depth: ws.max_tag_depth,
        }
    }
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// Your workspace and its settings.
    async fn workspace(&self, ctx: &Context<'_>) -> Result<Workspace> {
        let caller = require(ctx, auth::Role::Viewer)?;
        let ws = workspaces::find(&state(ctx)?.db, caller.workspace_id).await?;
        Ok(ws.into())
    }

    /// The key making this request and its workspace.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let caller = require(ctx, auth::Role::Viewer)?;
        let workspace = workspaces::find(&state(ctx)?.db, caller.workspace_id).await?;
        Ok(Viewer {
            key_name: caller.key_name.clone(),
            role: caller.role.into(),
            workspace: workspace.name,
        })
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Changes your workspace's tag rules (ADMIN). Existing tags are not checked again.
    async fn update_workspace_settings(
        &self,
        ctx: &Context<'_>,
        lowercase_tags: Option<bool>,
        max_tag_depth: Option<i32>,
    ) -> Result<Workspace> {
        let caller = require(ctx, auth::Role::Admin)?;
        let ws = workspaces::update_settings(
            &state(ctx)?.db,
            caller.workspace_id,
            lowercase_tags,
            max_tag_depth,
        )
        .await?;
        Ok(ws.into())
    }

    /// Creates an API key in your workspace (ADMIN). The secret is shown once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: Role,
    ) -> Result<ApiKeyCreated> {
        let caller = require(ctx, auth::Role::Admin)?;
        let created =
            keys::create(&state(ctx)?.db, caller.workspace_id, &name, role.into()).await?;
        Ok(ApiKeyCreated {
            name: created.name,
            role: created.role.into(),
            secret: created.secret,
        })
    }

    /// Revokes every key of that name in your workspace (ADMIN); they stop working at once.
    /// Returns how many keys were revoked.
    async fn revoke_api_key(&self, ctx: &Context<'_>, name: String) -> Result<i32> {
        let caller = require(ctx, auth::Role::Admin)?;
        let app = state(ctx)?;
        let count = keys::revoke(&app.db, caller.workspace_id, &name).await?;
        app.keys.forget_all();
        Ok(count as i32)
    }
}

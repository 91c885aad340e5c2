//! GraphQL types and operations of accounts and users.

use super::Result;
use async_graphql::{
    Context, ID, InputObject, Interface, MaybeUndefined, Object, Union, types::Json,
};
use chrono::{DateTime, Utc};
use entity::{account, user};

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::segments::store as segment_store;
use crate::subjects::page::{PageRequest, check_search};
use crate::subjects::users::UserScope;
use crate::subjects::{Patch, SubjectKind, accounts, users};
use crate::tags::history::{self, HistoryScope};
use crate::tags::store;
use sea_orm::sea_query::SelectStatement;

use super::automation::{AutomationEvent, Script, ScriptRun};
use super::connection::{CountedConnection, TotalCount, connection, page_complexity, page_request};
use super::context::{loaders, require, state, wake_worker};
use super::ids::{self, NodeKind};
use super::loaders::{Shape, prime_accounts, prime_users, user_by_id};
use super::segments::{Segment, SegmentChange};
use super::tags::{Tag, TagChange, history_connection, subject_tags};
use crate::automation::{events, scripts};

/// An object with a global ID.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    Account(Account),
    User(User),
    Tag(Tag),
    TagChange(TagChange),
    Script(Script),
    ScriptRun(ScriptRun),
    AutomationEvent(AutomationEvent),
    Segment(Segment),
    SegmentChange(SegmentChange),
    Webhook(super::webhooks::Webhook),
    WebhookDelivery(super::webhooks::WebhookDelivery),
}

/// Something that carries tags: an account or a user.
#[derive(Union)]
pub enum Subject {
    Account(Account),
    User(User),
}

/// A subject of the caller's workspace, through the request's loaders.
pub async fn load_subject(
    ctx: &Context<'_>,
    kind: SubjectKind,
    id: i64,
) -> Result<Option<Subject>> {
    let loaders = loaders(ctx)?;
    Ok(match kind {
        SubjectKind::Account => loaders
            .accounts
            .load_one(id)
            .await?
            .map(|a| Subject::Account(Account(a))),
        SubjectKind::User => loaders
            .users
            .load_one(id)
            .await?
            .map(|u| Subject::User(User(u))),
    })
}

/// A company (customer account).
pub struct Account(pub account::Model);

/// A person (contact), optionally member of an account.
pub struct User(pub user::Model);

#[Object]
impl Account {
    async fn id(&self) -> ID {
        ids::encode(NodeKind::Account, self.0.id)
    }
    /// Your system's id for this account; unique per workspace.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Custom attributes: a JSON object.
    async fn attributes(&self) -> Json<&serde_json::Value> {
        Json(&self.0.attributes)
    }
    async fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_activity_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The account's tags, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        subject_tags(ctx, SubjectKind::Account, self.0.id).await
    }
    /// The segments of accounts the account matches now.
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        subject_segments(ctx, SubjectKind::Account, self.0.id).await
    }
    /// The account's tag changes, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<TagChange>> {
        let scope = HistoryScope {
            subject: Some((SubjectKind::Account, self.0.id)),
            ..Default::default()
        };
        history_connection(ctx, scope, first, after).await
    }
    /// The account's users, oldest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<User>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, after)?;
        let scope = UserScope {
            account_id: Some(self.0.id),
            ..UserScope::default()
        };
        user_connection(ctx, caller.workspace_id, scope, request, None, None).await
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ids::encode(NodeKind::User, self.0.id)
    }
    /// Your system's id for this user; unique per workspace.
    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }
    /// Unique per workspace.
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn first_name(&self) -> Option<&str> {
        self.0.first_name.as_deref()
    }
    async fn last_name(&self) -> Option<&str> {
        self.0.last_name.as_deref()
    }
    /// The account the user belongs to.
    async fn account(&self, ctx: &Context<'_>) -> Result<Option<Account>> {
        let Some(account_id) = self.0.account_id else {
            return Ok(None);
        };
        let loaders = loaders(ctx)?;
        Ok(loaders.accounts.load_one(account_id).await?.map(Account))
    }
    /// Custom attributes: a JSON object.
    async fn attributes(&self) -> Json<&serde_json::Value> {
        Json(&self.0.attributes)
    }
    async fn last_seen_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_seen_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The user's tags, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        subject_tags(ctx, SubjectKind::User, self.0.id).await
    }
    /// The segments of users the user matches now.
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        subject_segments(ctx, SubjectKind::User, self.0.id).await
    }
    /// The user's tag changes, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<TagChange>> {
        let scope = HistoryScope {
            subject: Some((SubjectKind::User, self.0.id)),
            ..Default::default()
        };
        history_connection(ctx, scope, first, after).await
    }
}

async fn user_connection(
    ctx: &Context<'_>,
    workspace_id: i64,
    scope: UserScope<'_>,
    request: PageRequest,
    search: Option<String>,
    matching: Option<SelectStatement>,
) -> ApiResult<CountedConnection<User>> {
    let db = state(ctx)?.db.clone();
    let scope = UserScope {
        search: search.as_deref().or(scope.search),
        matching: matching.as_ref(),
        ..scope
    };
    // Not the accounts joined as for one user: with the page's LIMIT bound
    // as a parameter, PostgreSQL planned the join anew on each execution
    // (0.3 to 0.9 ms), which cost more than the accounts' own statement
    // (BENCHMARKS.md, "PostgreSQL read path").
    let page = users::list(&db, workspace_id, scope, request).await?;
    prime_users(ctx, Shape::Page, &page.rows).await?;
    let account_id = scope.account_id;
    let total = TotalCount::new(move || {
        let db = db.clone();
        let search = search.clone();
        let matching = matching.clone();
        async move {
            let scope = UserScope {
                account_id,
                search: search.as_deref(),
                matching: matching.as_ref(),
            };
            Ok(users::count(&db, workspace_id, scope).await?)
        }
    });
    Ok(connection(page, request, |u| u.id, User, total))
}

#[derive(Default)]
pub struct SubjectQuery;

#[Object]
impl SubjectQuery {
    /// Any object by its global ID; null when it does not exist in your workspace.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let node = match ids::decode(&id)? {
            (NodeKind::Account, id) => accounts::find(db, caller.workspace_id, id)
                .await?
                .map(|a| Node::Account(Account(a))),
            (NodeKind::User, id) => users::find(db, caller.workspace_id, id)
                .await?
                .map(|u| Node::User(User(u))),
            (NodeKind::Tag, id) => store::find_many(db, caller.workspace_id, &[id])
                .await?
                .pop()
                .map(|t| Node::Tag(Tag::from(t))),
            (NodeKind::TagChange, id) => history::find(db, caller.workspace_id, id)
                .await?
                .map(|c| Node::TagChange(TagChange(c))),
            (NodeKind::Script, id) => scripts::find(db, caller.workspace_id, id)
                .await?
                .map(|s| Node::Script(Script(s))),
            (NodeKind::ScriptRun, id) => scripts::find_run(db, caller.workspace_id, id)
                .await?
                .map(|r| Node::ScriptRun(ScriptRun(r))),
            (NodeKind::AutomationEvent, id) => {
                if caller.role < Role::Developer {
                    None
                } else {
                    events::find(db, caller.workspace_id, id)
                        .await?
                        .map(|e| Node::AutomationEvent(AutomationEvent(e)))
                }
            }
            (NodeKind::Segment, id) => segment_store::find(db, caller.workspace_id, id)
                .await?
                .map(|s| Node::Segment(Segment(s))),
            (NodeKind::SegmentChange, id) => {
                segment_store::find_change(db, caller.workspace_id, id)
                    .await?
                    .map(|c| Node::SegmentChange(SegmentChange(c)))
            }
            // Webhooks are ADMIN's: null for other roles, as if absent.
            (NodeKind::Webhook, _) | (NodeKind::WebhookDelivery, _)
                if caller.role < Role::Admin =>
            {
                None
            }
            (NodeKind::Webhook, id) => super::webhooks::find_webhook(ctx, caller.workspace_id, id)
                .await?
                .map(Node::Webhook),
            (NodeKind::WebhookDelivery, id) => {
                super::webhooks::find_delivery(ctx, caller.workspace_id, id)
                    .await?
                    .map(Node::WebhookDelivery)
            }
        };
        Ok(node)
    }

    /// Accounts in creation order; `search` matches name or external id
    /// (case-insensitive); `filter` is a filter expression (DESIGN.md, Filter
    /// language), whose errors are BAD_USER_INPUT with line and column.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn accounts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        filter: Option<String>,
    ) -> Result<CountedConnection<Account>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, after)?;
        check_search(search.as_deref()).map_err(ApiError::bad_input)?;
        let app = state(ctx)?;
        let db = app.db.clone();
        let workspace_id = caller.workspace_id;
        let matching = match &filter {
            Some(text) => Some(
                app.filter_members(workspace_id, SubjectKind::Account, text)
                    .await?,
            ),
            None => None,
        };
        let page = accounts::list(
            &db,
            workspace_id,
            search.as_deref(),
            matching.as_ref(),
            request,
        )
        .await?;
        prime_accounts(ctx, Shape::Page, &page.rows).await?;
        let total = TotalCount::new(move || {
            let db = db.clone();
            let search = search.clone();
            let matching = matching.clone();
            async move {
                Ok(
                    accounts::count(&db, workspace_id, search.as_deref(), matching.as_ref())
                        .await?,
                )
            }
        });
        Ok(connection(page, request, |a| a.id, Account, total))
    }

    /// One account, by id or by external id.
    async fn account(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        external_id: Option<String>,
    ) -> Result<Option<Account>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let found = match (id, external_id) {
            (Some(id), None) => {
                let id = ids::decode_as(&id, NodeKind::Account)?;
                accounts::find(db, caller.workspace_id, id).await
            }
            (None, Some(external_id)) => {
                accounts::find_by_external_id(db, caller.workspace_id, &external_id).await
            }
            _ => {
                return Err(ApiError::bad_input(
                    "pass exactly one of `id` and `externalId`",
                ));
            }
        };
        Ok(found?.map(Account))
    }

    /// Users in creation order; `search` matches email, names or external id
    /// (case-insensitive); `filter` is a filter expression (DESIGN.md, Filter
    /// language), whose errors are BAD_USER_INPUT with line and column.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        filter: Option<String>,
    ) -> Result<CountedConnection<User>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, after)?;
        check_search(search.as_deref()).map_err(ApiError::bad_input)?;
        let app = state(ctx)?;
        let matching = match &filter {
            Some(text) => Some(
                app.filter_members(caller.workspace_id, SubjectKind::User, text)
                    .await?,
            ),
            None => None,
        };
        user_connection(
            ctx,
            caller.workspace_id,
            UserScope::default(),
            request,
            search,
            matching,
        )
        .await
    }

    /// One user, by id, email or external id.
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        email: Option<String>,
        external_id: Option<String>,
    ) -> Result<Option<User>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let workspace_id = caller.workspace_id;
        let found = match (id, email, external_id) {
            (Some(id), None, None) => {
                let id = ids::decode_as(&id, NodeKind::User)?;
                return Ok(user_by_id(ctx, db, workspace_id, id).await?.map(User));
            }
            (None, Some(email), None) => users::find_by_email(db, workspace_id, &email).await,
            (None, None, Some(external_id)) => {
                users::find_by_external_id(db, workspace_id, &external_id).await
            }
            _ => {
                return Err(ApiError::bad_input(
                    "pass exactly one of `id`, `email` and `externalId`",
                ));
            }
        };
        let found = found?;
        if let Some(user) = &found {
            prime_users(ctx, Shape::Single, std::slice::from_ref(user)).await?;
        }
        Ok(found.map(User))
    }
}

/// An account to create or update.
#[derive(InputObject)]
pub struct AccountInput {
    /// Upsert key when given; otherwise a new account is created.
    external_id: Option<String>,
    name: String,
    /// A JSON object, merged into the current attributes key by key (`null` removes a key).
    attributes: Option<Json<serde_json::Value>>,
    /// Omit to keep, `null` to clear.
    last_activity_at: MaybeUndefined<DateTime<Utc>>,
}

/// A user to create or update.
#[derive(InputObject)]
pub struct UserInput {
    /// Upsert key is externalId when given, else email (unique per workspace).
    external_id: Option<String>,
    email: String,
    /// Omit to keep, `null` to clear.
    first_name: MaybeUndefined<String>,
    /// Omit to keep, `null` to clear.
    last_name: MaybeUndefined<String>,
    /// The external id of the user's account; `null` detaches the user from its account.
    account_external_id: MaybeUndefined<String>,
    /// A JSON object, merged into the current attributes key by key (`null` removes a key).
    attributes: Option<Json<serde_json::Value>>,
    /// Omit to keep, `null` to clear.
    last_seen_at: MaybeUndefined<DateTime<Utc>>,
}

fn patch<T>(value: MaybeUndefined<T>) -> Patch<T> {
    match value {
        MaybeUndefined::Undefined => Patch::Keep,
        MaybeUndefined::Null => Patch::Clear,
        MaybeUndefined::Value(value) => Patch::Set(value),
    }
}

#[derive(Default)]
pub struct SubjectMutation;

#[Object]
impl SubjectMutation {
    /// Creates or updates an account (MEMBER and up).
    async fn upsert_account(&self, ctx: &Context<'_>, input: AccountInput) -> Result<Account> {
        let caller = require(ctx, Role::Member)?;
        let input = accounts::AccountInput {
            external_id: input.external_id,
            name: input.name,
            attributes: input.attributes.map(|j| j.0),
            last_activity_at: patch(input.last_activity_at),
        };
        let app = state(ctx)?;
        let model = accounts::upsert(&app.db, caller.workspace_id, input, &app.clock).await?;
        wake_worker(ctx);
        Ok(Account(model))
    }

    /// Creates or updates a user (MEMBER and up).
    async fn upsert_user(&self, ctx: &Context<'_>, input: UserInput) -> Result<User> {
        let caller = require(ctx, Role::Member)?;
        let input = users::UserInput {
            external_id: input.external_id,
            email: input.email,
            first_name: patch(input.first_name),
            last_name: patch(input.last_name),
            account_external_id: patch(input.account_external_id),
            attributes: input.attributes.map(|j| j.0),
            last_seen_at: patch(input.last_seen_at),
        };
        let app = state(ctx)?;
        let model = users::upsert(&app.db, caller.workspace_id, input, &app.clock).await?;
        wake_worker(ctx);
        Ok(User(model))
    }

    /// Deletes an account (DEVELOPER and up); its users stay, without an account.
    async fn delete_account(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Account)?;
        let deleted = crate::subjects::delete(
            &state(ctx)?.db,
            caller.workspace_id,
            SubjectKind::Account,
            id,
            &state(ctx)?.clock,
        )
        .await?;
        if !deleted {
            return Err(ApiError::not_found("no such account"));
        }
        Ok(true)
    }

    /// Deletes a user (DEVELOPER and up).
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::User)?;
        let deleted = crate::subjects::delete(
            &state(ctx)?.db,
            caller.workspace_id,
            SubjectKind::User,
            id,
            &state(ctx)?.clock,
        )
        .await?;
        if !deleted {
            return Err(ApiError::not_found("no such user"));
        }
        Ok(true)
    }
}

/// The segments a subject matches now, through the request's loader.
async fn subject_segments(ctx: &Context<'_>, kind: SubjectKind, id: i64) -> Result<Vec<Segment>> {
    let loaders = loaders(ctx)?;
    Ok(loaders
        .subject_segments
        .load_one((kind, id))
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(Segment)
        .collect())
}

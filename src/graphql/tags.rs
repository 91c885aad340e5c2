//! GraphQL types and operations of tags: tagging, bulk, history, lifecycle, catalogue.

use std::sync::Arc;

use super::Result;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{tag, tag_change};

use crate::app;
use crate::app::references::{self, Usage};
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::subjects::SubjectKind as DomainKind;
use crate::subjects::page::check_search;
use crate::tagging::assign::{self, Actor, BulkOutcome};
use crate::tags::catalogue::{self, TagFilter};
use crate::tags::history::{self, HistoryScope};
use crate::tags::name::path_of;
use crate::tags::{Cause, Op, Source, store};

use super::automation::Script;
use super::connection::{CountedConnection, TotalCount, connection, page_complexity, page_request};
use super::context::{loaders, require, state, wake_worker};
use super::ids::{self, NodeKind};
use super::segments::Segment;
use super::subjects::{Account, Subject, User, load_subject};
use super::webhooks::Webhook;

/// Accounts or users.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::subjects::SubjectKind")]
pub enum SubjectKind {
    Account,
    User,
}

/// Whether a change added or removed a tag.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::tags::Op")]
pub enum TagOp {
    Added,
    Removed,
}

/// What made a change.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::tags::Source")]
pub enum ChangeSource {
    /// One subject, through the API.
    Manual,
    /// Many subjects at once: bulk mutations, merges, deletions.
    Bulk,
    /// A CSV or Excel import.
    Import,
    /// A segment's entry or exit actions.
    Trigger,
    /// A Rhai script.
    Script,
}

/// A tag. Names are case-sensitive; `Key: Value` names are key:value tags;
/// `a/b/c` names are hierarchical, their parents existing implicitly. The
/// tag returned by `renameTag` or `mergeTags` also carries what the change
/// rewrote.
pub struct Tag(pub tag::Model, Option<Arc<references::TagRewrite>>);

impl From<tag::Model> for Tag {
    fn from(model: tag::Model) -> Self {
        Tag(model, None)
    }
}

/// Where a tag is named: renaming, merging or deleting it reaches all of these.
pub struct TagUsage(Usage);

#[Object]
impl TagUsage {
    /// Segments whose filter or onEntry/onExit actions name this tag, or a pattern that matches it.
    async fn segments(&self) -> Vec<Segment> {
        self.0.segments.iter().cloned().map(Segment).collect()
    }
    /// Scripts whose source names this tag in a string literal (a name or a pattern that matches it).
    async fn scripts(&self) -> Vec<Script> {
        self.0.scripts.iter().cloned().map(Script).collect()
    }
    /// Webhooks whose tag patterns match this tag.
    async fn webhooks(&self) -> Vec<Webhook> {
        self.0.webhooks.iter().cloned().map(Webhook::from).collect()
    }
}

/// What a rename or merge did to the places that named the old tags.
pub struct TagRewrite(Arc<references::TagRewrite>);

#[Object]
impl TagRewrite {
    /// Segments whose filter or actions were rewritten to the new name (membership kept).
    async fn segments(&self) -> Vec<Segment> {
        self.0.rewritten.iter().cloned().map(Segment).collect()
    }
    /// Patterns that selected an old name and do not select the new one,
    /// kept as written: their segments' members with that tag leave.
    async fn kept_patterns(&self) -> Vec<KeptPattern> {
        self.0
            .kept
            .iter()
            .map(|(segment, pattern)| KeptPattern {
                segment: Segment(segment.clone()),
                pattern: pattern.clone(),
            })
            .collect()
    }
    /// Scripts naming an old tag in a string literal: never rewritten, edit them.
    async fn scripts(&self) -> Vec<Script> {
        self.0.scripts.iter().cloned().map(Script).collect()
    }
    /// Webhooks whose tag patterns named an old tag (exactly or as `old/*`)
    /// and now name the new one.
    async fn webhooks(&self) -> Vec<Webhook> {
        self.0.webhooks.iter().cloned().map(Webhook::from).collect()
    }
}

/// A tag pattern of a segment's filter, kept as written by a rename.
#[derive(SimpleObject)]
pub struct KeptPattern {
    segment: Segment,
    pattern: String,
}

#[Object]
impl Tag {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Tag, self.0.id)
    }
    /// Full name as written: 'Hot Lead', 'Region: Northeast', 'sports/football/australia'.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// 'Region' for the key:value tag 'Region: Northeast'; null otherwise.
    async fn key(&self) -> Option<&str> {
        self.0.key.as_deref()
    }
    async fn value(&self) -> Option<&str> {
        self.0.value.as_deref()
    }
    /// Hierarchy levels: ['sports', 'football', 'australia']; one element for a flat tag.
    async fn path(&self) -> Vec<&str> {
        path_of(&self.0.name)
    }
    /// The tag one level up ('sports/football' for 'sports/football/australia').
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<Tag>> {
        let Some(parent_id) = self.0.parent_id else {
            return Ok(None);
        };
        let parent = loaders(ctx)?.tags.load_one(parent_id).await?;
        Ok(parent.filter(|p| p.deleted_at.is_none()).map(Tag::from))
    }
    /// The tags one level down, by name.
    async fn children(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        let children = loaders(ctx)?.tag_children.load_one(self.0.id).await?;
        Ok(children
            .unwrap_or_default()
            .into_iter()
            .map(Tag::from)
            .collect())
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// How many accounts carry the tag.
    async fn account_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let counts = loaders(ctx)?.tag_counts.load_one(self.0.id).await?;
        Ok(counts.map_or(0, |(accounts, _)| accounts as i64))
    }
    /// How many users carry the tag.
    async fn user_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let counts = loaders(ctx)?.tag_counts.load_one(self.0.id).await?;
        Ok(counts.map_or(0, |(_, users)| users as i64))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Whether the tag was deleted (only history still shows it).
    async fn deleted(&self) -> bool {
        self.0.deleted_at.is_some()
    }
    /// Where the tag is named: renaming, merging or deleting it reaches all of these.
    async fn usage(&self, ctx: &Context<'_>) -> Result<TagUsage> {
        let usage = loaders(ctx)?.tag_usage.load_one(self.0.id).await?;
        Ok(TagUsage(usage.unwrap_or_default()))
    }
    /// On the tag `renameTag` or `mergeTags` returns: the segments it
    /// rewrote, the patterns it kept, the scripts to edit. Null elsewhere.
    async fn rewrite(&self) -> Option<TagRewrite> {
        self.1.clone().map(TagRewrite)
    }
}

/// One tag added to or removed from one subject.
pub struct TagChange(pub tag_change::Model);

#[Object]
impl TagChange {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::TagChange, self.0.id)
    }
    async fn op(&self) -> TagOp {
        self.0.op.into()
    }
    async fn tag(&self, ctx: &Context<'_>) -> Result<Tag> {
        let tag = loaders(ctx)?.tags.load_one(self.0.tag_id).await?;
        Ok(Tag::from(
            tag.ok_or_else(|| ApiError::not_found("tag not found"))?,
        ))
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<Subject> {
        let kind = self.0.subject_kind;
        load_subject(ctx, kind, self.0.subject_id)
            .await?
            .ok_or_else(|| ApiError::not_found("subject not found"))
    }
    async fn source(&self) -> ChangeSource {
        self.0.source.into()
    }
    /// API key name, script name or segment name that made the change.
    async fn actor(&self) -> Option<&str> {
        self.0.actor.as_deref()
    }
    /// The change or segment event that led to this one, when automated.
    async fn cause_id(&self) -> Option<ID> {
        match (self.0.cause_id, self.0.cause_segment_change_id) {
            (Some(id), _) => Some(ids::encode(NodeKind::TagChange, id)),
            (None, Some(id)) => Some(ids::encode(NodeKind::SegmentChange, id)),
            (None, None) => None,
        }
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// What a bulk operation did.
#[derive(SimpleObject)]
pub struct BulkResult {
    /// Subjects the target selected.
    matched: i64,
    /// Tag assignments actually created or removed (existing ones are left alone).
    changed: i64,
}

impl From<BulkOutcome> for BulkResult {
    fn from(outcome: BulkOutcome) -> Self {
        BulkResult {
            matched: outcome.matched as i64,
            changed: outcome.changed as i64,
        }
    }
}

/// Exactly one of: ids; segmentId; subjectKind with filter.
#[derive(InputObject)]
pub struct BulkTarget {
    /// Accounts and users (they may mix), at most 10,000.
    ids: Option<Vec<ID>>,
    /// The segment's current members.
    segment_id: Option<ID>,
    /// With `filter`: the subjects of this kind that the filter selects now.
    subject_kind: Option<SubjectKind>,
    /// A filter expression (see DESIGN.md, Filter language).
    filter: Option<String>,
}

/// A page of a history, newest first.
pub async fn history_connection(
    ctx: &Context<'_>,
    scope: HistoryScope,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<CountedConnection<TagChange>> {
    let caller = require(ctx, Role::Viewer)?;
    let request = page_request(first, after)?;
    let db = state(ctx)?.db.clone();
    let workspace_id = caller.workspace_id;
    let page = history::list(&db, workspace_id, scope, request).await?;
    let total = TotalCount::new(move || {
        let db = db.clone();
        async move { Ok(history::count(&db, workspace_id, scope).await?) }
    });
    Ok(connection(page, request, |c| c.id, TagChange, total))
}

/// The tags of a subject, by name.
pub async fn subject_tags(ctx: &Context<'_>, kind: DomainKind, id: i64) -> Result<Vec<Tag>> {
    let tags = loaders(ctx)?.subject_tags.load_one((kind, id)).await?;
    Ok(tags
        .unwrap_or_default()
        .into_iter()
        .map(Tag::from)
        .collect())
}

/// Reads a subject id (an Account or a User id).
pub(crate) fn parse_subject_id(id: &ID) -> ApiResult<(DomainKind, i64)> {
    match ids::decode(id)? {
        (NodeKind::Account, n) => Ok((DomainKind::Account, n)),
        (NodeKind::User, n) => Ok((DomainKind::User, n)),
        _ => Err(ApiError::bad_input(format!(
            "\"{}\" is not the id of an account or a user",
            id.as_str()
        ))),
    }
}

#[derive(Default)]
pub struct TagQuery;

#[Object]
impl TagQuery {
    /// The tag catalogue in name order. `search` matches any part of the name
    /// (case-insensitive); `prefix` matches the start exactly ('sports/', 'Department: ').
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn tags(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        search: Option<String>,
        prefix: Option<String>,
    ) -> Result<CountedConnection<Tag>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, None)?;
        check_search(search.as_deref()).map_err(ApiError::bad_input)?;
        let after = after.as_deref().map(ids::decode_name_cursor).transpose()?;
        let db = state(ctx)?.db.clone();
        let workspace_id = caller.workspace_id;
        let filter = TagFilter { search, prefix };
        let page =
            catalogue::list(&db, workspace_id, &filter, request.first, after.as_deref()).await?;
        let mut connection = async_graphql::connection::Connection::with_additional_fields(
            after.is_some(),
            page.has_next,
            TotalCount::new(move || {
                let db = db.clone();
                let filter = filter.clone();
                async move { Ok(catalogue::count(&db, workspace_id, &filter).await?) }
            }),
        );
        connection.edges = page
            .rows
            .into_iter()
            .map(|t| async_graphql::connection::Edge::new(ids::name_cursor(&t.name), Tag::from(t)))
            .collect();
        Ok(connection)
    }

    /// One tag by its exact name.
    async fn tag(&self, ctx: &Context<'_>, name: String) -> Result<Option<Tag>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let look = ctx.look_ahead();
        if !look.field("userCount").exists() && !look.field("accountCount").exists() {
            let tag = store::find_live(db, caller.workspace_id, &name).await?;
            return Ok(tag.map(Tag::from));
        }
        // The counts asked: read with the tag, in the same statement.
        let found = catalogue::find_live_with_counts(db, caller.workspace_id, &name).await?;
        let Some((tag, counts)) = found else {
            return Ok(None);
        };
        loaders(ctx)?.tag_counts.feed_one(tag.id, counts).await;
        Ok(Some(Tag::from(tag)))
    }

    /// Tag changes of the workspace, newest first; narrowed to one tag and/or one subject.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn tag_changes(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        tag: Option<String>,
        subject_id: Option<ID>,
    ) -> Result<CountedConnection<TagChange>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let mut scope = HistoryScope::default();
        if let Some(name) = tag {
            // A deleted or unknown tag has no changes to show.
            match store::find_live(db, caller.workspace_id, &name).await? {
                Some(tag) => scope.tag_id = Some(tag.id),
                None => scope.tag_id = Some(-1),
            }
        }
        if let Some(id) = subject_id {
            scope.subject = Some(parse_subject_id(&id)?);
        }
        history_connection(ctx, scope, first, after).await
    }
}

fn actor<'a>(key_name: &'a str, source: Source) -> Actor<'a> {
    Actor {
        source,
        name: Some(key_name),
        cause: Cause::None,
        depth: 0,
    }
}

async fn tag_one(ctx: &Context<'_>, subject: ID, tags: Vec<String>, op: Op) -> Result<Subject> {
    let caller = require(ctx, Role::Member)?;
    let (kind, id) = parse_subject_id(&subject)?;
    if tags.is_empty() {
        return Err(ApiError::bad_input("name at least one tag"));
    }
    let db = &state(ctx)?.db;
    assign::tag_one(
        db,
        caller.workspace_id,
        (kind, id),
        &tags,
        op,
        actor(&caller.key_name, Source::Manual),
        &state(ctx)?.clock,
    )
    .await?;
    wake_worker(ctx);
    // Read back with fresh tags (the request's loader may hold older ones).
    let subject = match kind {
        DomainKind::Account => crate::subjects::accounts::find(db, caller.workspace_id, id)
            .await?
            .map(|a| Subject::Account(Account(a))),
        DomainKind::User => crate::subjects::users::find(db, caller.workspace_id, id)
            .await?
            .map(|u| Subject::User(User(u))),
    };
    loaders(ctx)?.subject_tags.clear::<(DomainKind, i64)>();
    subject.ok_or_else(|| ApiError::not_found("subject not found"))
}

async fn bulk(
    ctx: &Context<'_>,
    target: BulkTarget,
    tags: Vec<String>,
    op: Op,
) -> Result<BulkResult> {
    let caller = require(ctx, Role::Developer)?;
    let app = state(ctx)?;
    let target = app::BulkTarget::new(
        target.ids,
        target.segment_id,
        target.subject_kind.map(DomainKind::from),
        target.filter,
    )?
    .decode(parse_subject_id, |id| ids::decode_as(id, NodeKind::Segment))?;
    let outcome = app
        .bulk_tags(
            caller.workspace_id,
            target,
            &tags,
            op,
            actor(&caller.key_name, Source::Bulk),
        )
        .await?;
    wake_worker(ctx);
    Ok(outcome.into())
}

#[derive(Default)]
pub struct TagMutation;

#[Object]
impl TagMutation {
    /// Appends; tags that do not exist yet are created. Already-present tags are a no-op.
    /// (MEMBER and up.) Invalid names fail the whole request, naming each bad tag.
    async fn add_tags(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        tags: Vec<String>,
    ) -> Result<Subject> {
        tag_one(ctx, subject_id, tags, Op::Added).await
    }

    /// Removes tags; absent ones are a no-op. (MEMBER and up.)
    async fn remove_tags(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        tags: Vec<String>,
    ) -> Result<Subject> {
        tag_one(ctx, subject_id, tags, Op::Removed).await
    }

    /// Adds tags to every subject of the target in one transaction (DEVELOPER and up).
    async fn bulk_add_tags(
        &self,
        ctx: &Context<'_>,
        target: BulkTarget,
        tags: Vec<String>,
    ) -> Result<BulkResult> {
        bulk(ctx, target, tags, Op::Added).await
    }

    /// Removes tags from every subject of the target in one transaction (DEVELOPER and up).
    async fn bulk_remove_tags(
        &self,
        ctx: &Context<'_>,
        target: BulkTarget,
        tags: Vec<String>,
    ) -> Result<BulkResult> {
        bulk(ctx, target, tags, Op::Removed).await
    }

    /// Renames a tag, keeping its assignments and history; renaming 'a' renames 'a/b' too.
    /// Segment filters and trigger actions naming it are rewritten in the same
    /// transaction, so no membership changes and no trigger fires; `rewrite`
    /// on the result lists them, the patterns kept as written, and the scripts
    /// naming the old name (never rewritten). Renaming onto an existing name is
    /// a CONFLICT (use mergeTags). (DEVELOPER and up.)
    async fn rename_tag(&self, ctx: &Context<'_>, name: String, new_name: String) -> Result<Tag> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        let rewrite = references::rename_tag(
            &app.db,
            &app.scripts,
            caller.workspace_id,
            &name,
            &new_name,
            &app.clock,
        )
        .await?;
        wake_worker(ctx);
        Ok(Tag(rewrite.tag.clone(), Some(Arc::new(rewrite))))
    }

    /// Moves every assignment of `names` to `into` (created when missing), without
    /// duplicates and recording each change, then deletes `names`. Filters and
    /// trigger actions naming `names` name `into` instead (see `renameTag`). (DEVELOPER and up.)
    async fn merge_tags(&self, ctx: &Context<'_>, names: Vec<String>, into: String) -> Result<Tag> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        let rewrite = references::merge_tags(
            &app.db,
            &app.scripts,
            caller.workspace_id,
            &names,
            &into,
            actor(&caller.key_name, Source::Bulk),
            &app.clock,
        )
        .await?;
        wake_worker(ctx);
        Ok(Tag(rewrite.tag.clone(), Some(Arc::new(rewrite))))
    }

    /// Deletes a tag and its descendants from every subject, recording each
    /// removal; history keeps naming it. While a segment (a filter pattern
    /// naming the tag itself, or an action) or a webhook (a tag pattern
    /// naming it) names one of them, this is a CONFLICT naming them, unless
    /// `force: true`: then the actions drop the tags, and filters and webhook
    /// patterns match nothing for them. (DEVELOPER and up.)
    async fn delete_tag(
        &self,
        ctx: &Context<'_>,
        name: String,
        #[graphql(default = false)] force: bool,
    ) -> Result<bool> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        references::delete_tag(
            &app.db,
            caller.workspace_id,
            &name,
            force,
            actor(&caller.key_name, Source::Bulk),
            &app.clock,
        )
        .await?;
        wake_worker(ctx);
        Ok(true)
    }

    /// Sets a tag's description; null or blank clears it. (DEVELOPER and up.)
    async fn set_tag_description(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
    ) -> Result<Tag> {
        let caller = require(ctx, Role::Developer)?;
        let tag =
            catalogue::set_description(&state(ctx)?.db, caller.workspace_id, &name, description)
                .await?;
        Ok(Tag::from(tag))
    }
}

//! GraphQL types and operations of segments, their membership history and
//! tracked events.

use super::Result;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, types::Json};
use chrono::{DateTime, Utc};
use entity::{segment, segment_change};
use sea_orm::sea_query::SelectStatement;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::segments::filter::Trace;
use crate::segments::membership;
use crate::segments::{activity, explain, store};
use crate::subjects::page::PageRequest;
use crate::subjects::users::UserScope;
use crate::subjects::{SubjectKind as DomainKind, accounts, users};
use crate::tags::history;

use super::connection::{CountedConnection, TotalCount, connection, page_complexity, page_request};
use super::context::{loaders, require, state, wake_worker};
use super::ids::{self, NodeKind};
use super::loaders::{Shape, prime_accounts, prime_users};
use super::subjects::{Account, Subject, User, load_subject};
use super::tags::{BulkResult, SubjectKind, Tag, TagChange, parse_subject_id};

/// How many subjects `previewSegment` shows.
const PREVIEW_SAMPLE: u64 = 10;

/// A page of the subjects a query selects, as a connection of subjects.
async fn subject_connection(
    ctx: &Context<'_>,
    workspace_id: i64,
    kind: DomainKind,
    matching: SelectStatement,
    request: PageRequest,
) -> ApiResult<CountedConnection<Subject>> {
    let db = state(ctx)?.db.clone();
    let counted = matching.clone();
    let total = TotalCount::new(move || {
        let db = db.clone();
        let counted = counted.clone();
        async move { Ok(store::count(&db, counted).await?) }
    });
    let db = &state(ctx)?.db;
    Ok(match kind {
        DomainKind::User => {
            let scope = UserScope {
                matching: Some(&matching),
                ..UserScope::default()
            };
            let page = users::list(db, workspace_id, scope, request).await?;
            prime_users(ctx, Shape::Page, &page.rows).await?;
            connection(page, request, |u| u.id, |u| Subject::User(User(u)), total)
        }
        DomainKind::Account => {
            let page = accounts::list(db, workspace_id, None, Some(&matching), request).await?;
            prime_accounts(ctx, Shape::Page, &page.rows).await?;
            connection(
                page,
                request,
                |a| a.id,
                |a| Subject::Account(Account(a)),
                total,
            )
        }
    })
}

/// A saved filter over accounts or users; subjects enter and leave it as
/// they change, firing its entry and exit actions.
pub struct Segment(pub segment::Model);

#[Object]
impl Segment {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Segment, self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn folder(&self) -> Option<&str> {
        self.0.folder.as_deref()
    }
    async fn subject_kind(&self) -> SubjectKind {
        self.0.subject_kind.into()
    }
    /// Canonical text of the filter expression (see DESIGN.md, Filter language).
    async fn filter(&self) -> &str {
        &self.0.filter
    }
    /// How many subjects match now (evaluated live).
    async fn member_count(&self, ctx: &Context<'_>) -> Result<i64> {
        let caller = require(ctx, Role::Viewer)?;
        let app = state(ctx)?;
        let (_, query) = app.members(caller.workspace_id, &self.0).await?;
        Ok(store::count(&app.db, query).await? as i64)
    }
    /// The subjects that match now (evaluated live), in creation order.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<Subject>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, after)?;
        let app = state(ctx)?;
        let (kind, query) = app.members(caller.workspace_id, &self.0).await?;
        subject_connection(ctx, caller.workspace_id, kind, query, request).await
    }
    /// Tags added and removed when a subject enters.
    async fn on_entry(&self) -> TagActions {
        TagActions(store::actions(&self.0.on_entry))
    }
    /// Tags added and removed when a subject leaves.
    async fn on_exit(&self) -> TagActions {
        TagActions(store::actions(&self.0.on_exit))
    }
    /// Whether the membership is stored and entries and exits are recorded
    /// and announced: when the segment has entry or exit actions, or an
    /// enabled script defines a segment hook.
    async fn tracked(&self) -> bool {
        self.0.tracked
    }
    /// Whether the filter reads the clock, so members also enter and leave as time passes.
    async fn time_based(&self) -> bool {
        self.0.time_based
    }
    /// Who entered and left, when and why, newest first (tracked segments).
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        subject_id: Option<ID>,
    ) -> Result<CountedConnection<SegmentChange>> {
        changes_connection(ctx, Some(self.0.id), subject_id, first, after).await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Segments whose filter uses in_segment of this one, by name (deleting
    /// or renaming it is refused while there are any).
    async fn used_by(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        let users = loaders(ctx)?.segment_users.load_one(self.0.id).await?;
        Ok(users.unwrap_or_default().into_iter().map(Segment).collect())
    }
}

/// A page of membership history.
async fn changes_connection(
    ctx: &Context<'_>,
    segment_id: Option<i64>,
    subject_id: Option<ID>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<CountedConnection<SegmentChange>> {
    let caller = require(ctx, Role::Viewer)?;
    let request = page_request(first, after)?;
    let subject = subject_id
        .as_ref()
        .map(super::tags::parse_subject_id)
        .transpose()?;
    let db = state(ctx)?.db.clone();
    let workspace_id = caller.workspace_id;
    let page = store::changes(&db, workspace_id, segment_id, subject, request).await?;
    let total = TotalCount::new(move || {
        let db = db.clone();
        async move { Ok(store::count_changes(&db, workspace_id, segment_id, subject).await?) }
    });
    Ok(connection(page, request, |c| c.id, SegmentChange, total))
}

/// Tags a segment adds and removes on entry or exit.
pub struct TagActions(store::TagActions<i64>);

async fn load_tags(ctx: &Context<'_>, ids: &[i64]) -> Result<Vec<Tag>> {
    let loaders = loaders(ctx)?;
    let found = loaders.tags.load_many(ids.iter().copied()).await?;
    Ok(ids
        .iter()
        .filter_map(|id| found.get(id).cloned())
        .filter(|t| t.deleted_at.is_none())
        .map(Tag::from)
        .collect())
}

#[Object]
impl TagActions {
    async fn add(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        load_tags(ctx, &self.0.add).await
    }
    async fn remove(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        load_tags(ctx, &self.0.remove).await
    }
}

/// Whether a subject entered or left a segment.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum SegmentOp {
    Entered,
    Exited,
}

/// What led a subject into or out of a segment.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::segments::membership::Reason")]
pub enum SegmentChangeReason {
    /// Its tags changed.
    Tags,
    /// Its fields or attributes changed.
    Fields,
    /// An event was tracked for it.
    Event,
    /// Its account, or one of its users, changed.
    Related,
    /// Time passed (the periodic sweep of filters that read the clock).
    Time,
}

/// One entry into or exit from a segment.
pub struct SegmentChange(pub segment_change::Model);

#[Object]
impl SegmentChange {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::SegmentChange, self.0.id)
    }
    async fn op(&self) -> SegmentOp {
        match self.0.op {
            membership::Op::Entered => SegmentOp::Entered,
            membership::Op::Exited => SegmentOp::Exited,
        }
    }
    async fn segment(&self, ctx: &Context<'_>) -> Result<Option<Segment>> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        Ok(store::find(db, caller.workspace_id, self.0.segment_id)
            .await?
            .map(Segment))
    }
    /// The subject; null when it was deleted since.
    async fn subject(&self, ctx: &Context<'_>) -> Result<Option<Subject>> {
        load_subject(ctx, self.0.subject_kind, self.0.subject_id).await
    }
    async fn reason(&self) -> SegmentChangeReason {
        self.0.reason.into()
    }
    /// The tag change that led to it, when one did.
    async fn cause(&self, ctx: &Context<'_>) -> Result<Option<TagChange>> {
        let Some(cause) = self.0.cause_id else {
            return Ok(None);
        };
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        Ok(history::find(db, caller.workspace_id, cause)
            .await?
            .map(TagChange))
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// What `previewSegment` finds.
#[derive(SimpleObject)]
pub struct SegmentPreview {
    /// How many subjects match now.
    count: i64,
    /// The first few of them, in creation order.
    sample: Vec<Subject>,
}

/// One part of a segment's filter, evaluated for one subject.
pub struct FilterTrace(Trace);

#[Object]
impl FilterTrace {
    /// Canonical text of this part.
    async fn text(&self) -> &str {
        &self.0.text
    }
    async fn value(&self) -> bool {
        self.0.value
    }
    /// What decided it for this subject, e.g. the subject's matching tags or an event count.
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
    async fn children(&self) -> Vec<FilterTrace> {
        self.0.children.iter().cloned().map(FilterTrace).collect()
    }
}

/// Why a subject is or is not in a segment.
#[derive(SimpleObject)]
pub struct MembershipExplanation {
    member: bool,
    /// When the subject entered, while a member (segments that keep their membership).
    since: Option<DateTime<Utc>>,
    trace: FilterTrace,
}

/// What saving a new filter would do to a segment's members.
#[derive(SimpleObject)]
pub struct SegmentChangePreview {
    entering: i64,
    exiting: i64,
    staying: i64,
    /// Up to 10 subjects that would enter, by id.
    entering_sample: Vec<Subject>,
    /// Up to 10 members that would leave, by id.
    exiting_sample: Vec<Subject>,
}

#[derive(Default)]
pub struct SegmentQuery;

#[Object]
impl SegmentQuery {
    /// Segments by name, optionally of one folder.
    async fn segments(&self, ctx: &Context<'_>, folder: Option<String>) -> Result<Vec<Segment>> {
        let caller = require(ctx, Role::Viewer)?;
        let list = store::list(&state(ctx)?.db, caller.workspace_id, folder.as_deref()).await?;
        Ok(list.into_iter().map(Segment).collect())
    }

    async fn segment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Segment>> {
        let caller = require(ctx, Role::Viewer)?;
        let id = ids::decode_as(&id, NodeKind::Segment)?;
        Ok(store::find(&state(ctx)?.db, caller.workspace_id, id)
            .await?
            .map(Segment))
    }

    /// Counts a filter's matches and shows a few, saving nothing. A filter
    /// error is BAD_USER_INPUT with `extensions.line` and `extensions.column`.
    async fn preview_segment(
        &self,
        ctx: &Context<'_>,
        subject_kind: SubjectKind,
        filter: String,
    ) -> Result<SegmentPreview> {
        let caller = require(ctx, Role::Viewer)?;
        let app = state(ctx)?;
        let kind = DomainKind::from(subject_kind);
        let query = app
            .filter_members(caller.workspace_id, kind, &filter)
            .await?;
        let count = store::count(&app.db, query.clone()).await?;
        let ids = store::sample(&app.db, query, PREVIEW_SAMPLE).await?;
        let mut sample = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(subject) = load_subject(ctx, kind, id).await? {
                sample.push(subject);
            }
        }
        Ok(SegmentPreview {
            count: count as i64,
            sample,
        })
    }

    /// Why a subject is or is not a member, part by part of the filter,
    /// evaluated now (VIEWER and up).
    async fn explain_membership(
        &self,
        ctx: &Context<'_>,
        segment_id: ID,
        subject_id: ID,
    ) -> Result<MembershipExplanation> {
        let caller = require(ctx, Role::Viewer)?;
        let app = state(ctx)?;
        let segment_id = ids::decode_as(&segment_id, NodeKind::Segment)?;
        let (kind, subject_id) = parse_subject_id(&subject_id)?;
        let explanation = explain::membership(
            &app.db,
            caller.workspace_id,
            segment_id,
            kind,
            subject_id,
            app.clock.now(),
        )
        .await?;
        Ok(MembershipExplanation {
            member: explanation.member,
            since: explanation.since,
            trace: FilterTrace(explanation.trace),
        })
    }

    /// What saving this filter on the segment would do, before anything is
    /// saved: how many members would leave, how many subjects would enter,
    /// how many stay, with a sample of each (VIEWER and up). A filter error
    /// is BAD_USER_INPUT with `extensions.line` and `extensions.column`.
    async fn preview_segment_change(
        &self,
        ctx: &Context<'_>,
        id: ID,
        filter: String,
    ) -> Result<SegmentChangePreview> {
        let caller = require(ctx, Role::Viewer)?;
        let app = state(ctx)?;
        let segment_id = ids::decode_as(&id, NodeKind::Segment)?;
        let preview = explain::change(
            &app.db,
            caller.workspace_id,
            segment_id,
            &filter,
            PREVIEW_SAMPLE as usize,
            app.clock.now(),
        )
        .await?;
        let subjects = async |ids: Vec<i64>| -> Result<Vec<Subject>> {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(subject) = load_subject(ctx, preview.kind, id).await? {
                    out.push(subject);
                }
            }
            Ok(out)
        };
        Ok(SegmentChangePreview {
            entering: preview.entering as i64,
            exiting: preview.exiting as i64,
            staying: preview.staying as i64,
            entering_sample: subjects(preview.entering_sample).await?,
            exiting_sample: subjects(preview.exiting_sample).await?,
        })
    }

    /// Entries into and exits from segments, newest first: of one segment
    /// and/or one subject.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn segment_history(
        &self,
        ctx: &Context<'_>,
        segment_id: Option<ID>,
        subject_id: Option<ID>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<SegmentChange>> {
        let segment_id = segment_id
            .map(|id| ids::decode_as(&id, NodeKind::Segment))
            .transpose()?;
        changes_connection(ctx, segment_id, subject_id, first, after).await
    }

    /// Entries into and exits from a segment per UTC day, for the last
    /// `days` days up to today (1 to 366, default 30), oldest first, days
    /// without changes included. Only tracked segments record them.
    async fn segment_activity(
        &self,
        ctx: &Context<'_>,
        segment_id: ID,
        #[graphql(default = 30)] days: i32,
    ) -> Result<Vec<SegmentDay>> {
        let caller = require(ctx, Role::Viewer)?;
        if !(1..=MAX_ACTIVITY_DAYS).contains(&days) {
            return Err(ApiError::bad_input(format!(
                "days must be between 1 and {MAX_ACTIVITY_DAYS}, not {days}"
            )));
        }
        let id = ids::decode_as(&segment_id, NodeKind::Segment)?;
        let app = state(ctx)?;
        if store::find(&app.db, caller.workspace_id, id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("no such segment"));
        }
        let today = app.clock.now().date_naive();
        let first = today - chrono::Days::new(u64::from(days.unsigned_abs() - 1));
        let since = first.and_time(chrono::NaiveTime::MIN).and_utc();
        let counted = store::changes_per_day(&app.db, caller.workspace_id, id, since).await?;
        let mut counted = counted.into_iter().peekable();
        Ok(first
            .iter_days()
            .take_while(|day| *day <= today)
            .map(|day| {
                let date = day.format("%Y-%m-%d").to_string();
                match counted.next_if(|c| c.day == date) {
                    Some(c) => SegmentDay {
                        date,
                        entered: c.entered,
                        exited: c.exited,
                    },
                    None => SegmentDay {
                        date,
                        entered: 0,
                        exited: 0,
                    },
                }
            })
            .collect())
    }
}

/// Most days `segmentActivity` counts.
const MAX_ACTIVITY_DAYS: i32 = 366;

/// A day's entries into and exits from a segment.
#[derive(SimpleObject)]
pub struct SegmentDay {
    /// The UTC day, `YYYY-MM-DD`.
    date: String,
    entered: i64,
    exited: i64,
}

/// Tags to add and remove.
#[derive(InputObject)]
pub struct TagActionsInput {
    add: Option<Vec<String>>,
    remove: Option<Vec<String>>,
}

/// A segment to create, or the new definition of one.
#[derive(InputObject)]
pub struct SegmentInput {
    /// Unique per workspace.
    name: String,
    folder: Option<String>,
    subject_kind: SubjectKind,
    /// A filter expression (see DESIGN.md, Filter language).
    filter: String,
    on_entry: Option<TagActionsInput>,
    on_exit: Option<TagActionsInput>,
}

impl SegmentInput {
    fn spec(self) -> store::SegmentSpec {
        let actions = |input: Option<TagActionsInput>| match input {
            Some(TagActionsInput { add, remove }) => store::TagActions {
                add: add.unwrap_or_default(),
                remove: remove.unwrap_or_default(),
            },
            None => store::TagActions::default(),
        };
        store::SegmentSpec {
            name: self.name,
            folder: self.folder,
            kind: self.subject_kind.into(),
            filter: self.filter,
            on_entry: actions(self.on_entry),
            on_exit: actions(self.on_exit),
        }
    }
}

#[derive(Default)]
pub struct SegmentMutation;

#[Object]
impl SegmentMutation {
    /// Saves a segment (DEVELOPER and up). Its current members are recorded
    /// without firing its entry actions (see `baselineSegment`). A name in
    /// use is CONFLICT; a filter error is BAD_USER_INPUT with line and column.
    async fn create_segment(&self, ctx: &Context<'_>, input: SegmentInput) -> Result<Segment> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        let listened = app.scripts_listen_to_segments(caller.workspace_id).await?;
        let model = store::create(
            &app.db,
            caller.workspace_id,
            input.spec(),
            listened,
            app.clock.now(),
        )
        .await?;
        Ok(Segment(model))
    }

    /// Replaces a segment's definition (DEVELOPER and up); its members under
    /// the new filter are recorded without firing.
    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: SegmentInput,
    ) -> Result<Segment> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Segment)?;
        let app = state(ctx)?;
        let listened = app.scripts_listen_to_segments(caller.workspace_id).await?;
        let model = store::update(
            &app.db,
            caller.workspace_id,
            id,
            input.spec(),
            listened,
            app.clock.now(),
        )
        .await?;
        Ok(Segment(model))
    }

    /// Deletes a segment and its history (DEVELOPER and up); CONFLICT while
    /// another segment names it through `in_segment`.
    async fn delete_segment(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Segment)?;
        let deleted = store::delete(&state(ctx)?.db, caller.workspace_id, id).await?;
        if !deleted {
            return Err(ApiError::not_found("no such segment"));
        }
        Ok(true)
    }

    /// Applies the segment's onEntry actions to every current member now (DEVELOPER and up).
    async fn baseline_segment(&self, ctx: &Context<'_>, id: ID) -> Result<BulkResult> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Segment)?;
        let app = state(ctx)?;
        let outcome =
            crate::tagging::baseline::baseline(&app.db, caller.workspace_id, id, &app.clock)
                .await?;
        wake_worker(ctx);
        Ok(outcome.into())
    }

    /// Records an event of a subject (MEMBER and up), for `events(name, 30d)`
    /// and `active_days(30d)` in filters; moves the user's `lastSeenAt` (or
    /// the account's `lastActivityAt`) forward to `at` (default: now).
    async fn track_event(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        name: String,
        at: Option<DateTime<Utc>>,
        properties: Option<Json<serde_json::Value>>,
    ) -> Result<bool> {
        let caller = require(ctx, Role::Member)?;
        let (kind, id) = super::tags::parse_subject_id(&subject_id)?;
        let app = state(ctx)?;
        let found = activity::track(
            &app.db,
            caller.workspace_id,
            (kind, id),
            activity::NewEvent {
                name,
                at,
                properties: properties.map(|p| p.0),
            },
            app.clock.now(),
        )
        .await?;
        if !found {
            return Err(ApiError::not_found("subject not found"));
        }
        wake_worker(ctx);
        Ok(true)
    }
}

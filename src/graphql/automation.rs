//! GraphQL types and operations of automation: scripts, their runs, dry
//! runs, and the outbox's events.

use super::Result;
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, types::Json};
use chrono::{DateTime, Utc};
use entity::{automation_event, script, script_run};
use serde_json::Value;

use crate::app::DryRunEvent;
use crate::auth::Role;
use crate::automation::script::{HookKind, PlannedAction as Planned};
use crate::automation::{apply, events, scripts};
use crate::error::{ApiError, Code};
use crate::subjects::SubjectKind as DomainKind;
use crate::vocab::Op;

use super::connection::{CountedConnection, TotalCount, connection, page_complexity, page_request};
use super::context::{loaders, require, state};
use super::ids::{self, NodeKind};
use super::subjects::{Subject, load_subject};
use super::tags::{SubjectKind, Tag, TagOp};

/// What happened to a subject that scripts can react to.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::vocab::EventKind")]
pub enum AutomationEventKind {
    /// A tag was added (hook `on_tag_added`).
    TagAdded,
    /// A tag was removed (hook `on_tag_removed`).
    TagRemoved,
    /// The subject entered a segment (hook `on_segment_entered`).
    SegmentEntered,
    /// The subject left a segment (hook `on_segment_exited`).
    SegmentExited,
}

impl From<HookKind> for AutomationEventKind {
    fn from(hook: HookKind) -> Self {
        match hook {
            HookKind::TagAdded => AutomationEventKind::TagAdded,
            HookKind::TagRemoved => AutomationEventKind::TagRemoved,
            HookKind::SegmentEntered => AutomationEventKind::SegmentEntered,
            HookKind::SegmentExited => AutomationEventKind::SegmentExited,
        }
    }
}

impl From<AutomationEventKind> for HookKind {
    fn from(kind: AutomationEventKind) -> Self {
        match kind {
            AutomationEventKind::TagAdded => HookKind::TagAdded,
            AutomationEventKind::TagRemoved => HookKind::TagRemoved,
            AutomationEventKind::SegmentEntered => HookKind::SegmentEntered,
            AutomationEventKind::SegmentExited => HookKind::SegmentExited,
        }
    }
}

/// A Rhai automation script. Its hook functions run when their events happen.
pub struct Script(pub script::Model);

#[Object]
impl Script {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::Script, self.0.id)
    }
    /// Unique in the workspace; uploading the same name makes a new version.
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    /// 1 for the first upload, one more for each upload of the same name.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// Only enabled scripts run.
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// The hooks the script defines (on_tag_added and so on).
    async fn hooks(&self, ctx: &Context<'_>) -> Result<Vec<AutomationEventKind>> {
        let compiled = state(ctx)?.scripts.compiled(&self.0)?;
        Ok(compiled.hooks().into_iter().map(Into::into).collect())
    }
    /// The script's runs, newest first.
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn runs(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<ScriptRun>> {
        let caller = require(ctx, Role::Viewer)?;
        let request = page_request(first, after)?;
        let db = state(ctx)?.db.clone();
        let (workspace_id, script_id) = (caller.workspace_id, self.0.id);
        let page = scripts::runs(&db, workspace_id, script_id, request).await?;
        let total = TotalCount::new(move || {
            let db = db.clone();
            async move { Ok(scripts::count_runs(&db, workspace_id, script_id).await?) }
        });
        Ok(connection(page, request, |r| r.id, ScriptRun, total))
    }
    /// How many of the script's runs failed at `since` or later (kept runs only).
    async fn failed_runs(&self, ctx: &Context<'_>, since: DateTime<Utc>) -> Result<i64> {
        let caller = require(ctx, Role::Viewer)?;
        let db = &state(ctx)?.db;
        let failed = scripts::count_failed_runs(db, caller.workspace_id, self.0.id, since).await?;
        Ok(failed as i64)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// A tag change a script planned.
#[derive(SimpleObject, Clone)]
pub struct PlannedAction {
    op: TagOp,
    tag: String,
    subject_kind: SubjectKind,
    subject_id: ID,
}

/// An attribute change a script planned (`set_attribute`).
#[derive(SimpleObject, Clone)]
pub struct PlannedAttributeChange {
    key: String,
    value: Json<Value>,
    subject_kind: SubjectKind,
    subject_id: ID,
}

/// The kind a planned action's `subjectKind` names (`ACCOUNT`, else `USER`).
fn kind_from_str(kind: &str) -> SubjectKind {
    if kind == DomainKind::Account.as_str() {
        SubjectKind::Account
    } else {
        SubjectKind::User
    }
}

/// Splits stored or planned actions into tag changes and attribute changes.
fn split_actions(actions: &Value) -> (Vec<PlannedAction>, Vec<PlannedAttributeChange>) {
    let mut tags = Vec::new();
    let mut attributes = Vec::new();
    for action in actions.as_array().into_iter().flatten() {
        let text = |key: &str| action[key].as_str().unwrap_or_default().to_owned();
        let subject_kind = kind_from_str(&text("subjectKind"));
        let subject_id = ID(text("subjectId"));
        match action["op"].as_str() {
            Some(op) if op == Op::Added.as_str() || op == Op::Removed.as_str() => {
                tags.push(PlannedAction {
                    op: if op == Op::Added.as_str() {
                        TagOp::Added
                    } else {
                        TagOp::Removed
                    },
                    tag: text("tag"),
                    subject_kind,
                    subject_id,
                })
            }
            Some("SET_ATTRIBUTE") => attributes.push(PlannedAttributeChange {
                key: text("key"),
                value: Json(action["value"].clone()),
                subject_kind,
                subject_id,
            }),
            _ => {}
        }
    }
    (tags, attributes)
}

/// One run of one script's hook for one event.
pub struct ScriptRun(pub script_run::Model);

#[Object]
impl ScriptRun {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::ScriptRun, self.0.id)
    }
    async fn script(&self, ctx: &Context<'_>) -> Result<Script> {
        let script = loaders(ctx)?.scripts.load_one(self.0.script_id).await?;
        Ok(Script(
            script.ok_or_else(|| ApiError::not_found("script not found"))?,
        ))
    }
    /// The version of the script that ran.
    async fn script_version(&self) -> i32 {
        self.0.script_version
    }
    async fn event(&self) -> AutomationEventKind {
        self.0.event_kind.into()
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<Subject> {
        load_subject(ctx, self.0.subject_kind, self.0.subject_id)
            .await?
            .ok_or_else(|| ApiError::not_found("subject not found"))
    }
    /// Whether the hook ran to its end within its limits and its plan was applied.
    async fn ok(&self) -> bool {
        self.0.ok
    }
    /// Why the run failed; nothing of a failed run's plan is applied.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// Lines the script logged with `log`, `print` or `debug`.
    async fn logs(&self) -> Vec<String> {
        self.0
            .logs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect()
    }
    /// The tag changes the run applied.
    async fn actions(&self) -> Vec<PlannedAction> {
        split_actions(&self.0.actions).0
    }
    /// The attribute changes the run applied.
    async fn attribute_changes(&self) -> Vec<PlannedAttributeChange> {
        split_actions(&self.0.actions).1
    }
    async fn duration_micros(&self) -> i64 {
        self.0.duration_micros
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// What a dry run of a script planned; nothing was applied.
#[derive(SimpleObject)]
pub struct ScriptTestResult {
    ok: bool,
    error: Option<String>,
    logs: Vec<String>,
    actions: Vec<PlannedAction>,
    attribute_changes: Vec<PlannedAttributeChange>,
    duration_micros: i64,
}

/// Where an outbox event is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "crate::vocab::EventStatus")]
pub enum AutomationEventStatus {
    /// Waiting to be handled (or retried).
    Pending,
    /// Claimed by a worker.
    Running,
    /// Handled.
    Done,
    /// Failed on every attempt; `lastError` says why.
    Failed,
}

/// An event of the automation outbox: a tag change or segment entry/exit
/// waiting for, or handled by, the worker.
pub struct AutomationEvent(pub automation_event::Model);

#[Object]
impl AutomationEvent {
    pub async fn id(&self) -> ID {
        ids::encode(NodeKind::AutomationEvent, self.0.id)
    }
    async fn kind(&self) -> AutomationEventKind {
        self.0.kind.into()
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<Option<Subject>> {
        load_subject(ctx, self.0.subject_kind, self.0.subject_id).await
    }
    async fn tag(&self, ctx: &Context<'_>) -> Result<Option<Tag>> {
        let Some(tag_id) = self.0.tag_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?.tags.load_one(tag_id).await?.map(Tag::from))
    }
    async fn status(&self) -> AutomationEventStatus {
        self.0.status.into()
    }
    /// How many automated steps led here (0 for a change made through the API).
    async fn depth(&self) -> i32 {
        self.0.depth
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// The tag change this event announces.
    async fn change_id(&self) -> Option<ID> {
        self.0
            .change_id
            .map(|id| ids::encode(NodeKind::TagChange, id))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the event is (or was) due; later than `createdAt` after a failed attempt.
    async fn run_at(&self) -> DateTime<Utc> {
        self.0.run_at
    }
}

/// A script to upload.
#[derive(InputObject)]
pub struct ScriptInput {
    /// Uploading an existing name makes a new version of that script.
    name: String,
    source: String,
    /// Default: true for a new script; unchanged for a new version.
    enabled: Option<bool>,
}

/// The event a dry run simulates.
#[derive(InputObject)]
pub struct TestEventInput {
    kind: AutomationEventKind,
    /// The account or user the event is about.
    subject_id: ID,
    /// The tag added or removed (tag events).
    tag: Option<String>,
    /// The segment entered or left (segment events).
    segment_id: Option<ID>,
}

/// A problem in a script's source, at its line and column.
#[derive(SimpleObject)]
pub struct ScriptDiagnostic {
    line: i32,
    column: i32,
    message: String,
}

#[derive(Default)]
pub struct AutomationQuery;

#[Object]
impl AutomationQuery {
    /// Compiles a script without saving it: its errors, each at its line and
    /// column; empty when it compiles (DEVELOPER and up). The compiler stops
    /// at the first error, so there is at most one; an error without a place
    /// (a source over the size limit) is at line 1, column 1.
    async fn check_script(
        &self,
        ctx: &Context<'_>,
        source: String,
    ) -> Result<Vec<ScriptDiagnostic>> {
        require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        Ok(match app.scripts.engine.compile(&source) {
            Ok(_) => Vec::new(),
            Err(error) => vec![ScriptDiagnostic {
                line: error
                    .line
                    .map_or(1, |l| i32::try_from(l).unwrap_or(i32::MAX)),
                column: error
                    .column
                    .map_or(1, |c| i32::try_from(c).unwrap_or(i32::MAX)),
                message: error.message,
            }],
        })
    }

    /// The workspace's scripts, by name.
    async fn scripts(&self, ctx: &Context<'_>) -> Result<Vec<Script>> {
        let caller = require(ctx, Role::Viewer)?;
        let list = scripts::list(&state(ctx)?.db, caller.workspace_id).await?;
        Ok(list.into_iter().map(Script).collect())
    }

    async fn script(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Script>> {
        let caller = require(ctx, Role::Viewer)?;
        let id = ids::decode_as(&id, NodeKind::Script)?;
        let found = scripts::find(&state(ctx)?.db, caller.workspace_id, id).await?;
        Ok(found.map(Script))
    }

    /// Events of the automation outbox, newest first; e.g. `status: FAILED`
    /// lists the events whose every attempt failed. (DEVELOPER and up.)
    #[graphql(complexity = "page_complexity(first, child_complexity)")]
    async fn automation_events(
        &self,
        ctx: &Context<'_>,
        status: Option<AutomationEventStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<CountedConnection<AutomationEvent>> {
        let caller = require(ctx, Role::Developer)?;
        let request = page_request(first, after)?;
        let db = state(ctx)?.db.clone();
        let workspace_id = caller.workspace_id;
        let status = status.map(Into::into);
        let page = events::list(&db, workspace_id, status, request).await?;
        let total = TotalCount::new(move || {
            let db = db.clone();
            async move { Ok(events::count(&db, workspace_id, status).await?) }
        });
        Ok(connection(page, request, |e| e.id, AutomationEvent, total))
    }
}

#[derive(Default)]
pub struct AutomationMutation;

#[Object]
impl AutomationMutation {
    /// Compiles and stores a script (DEVELOPER and up). A syntax error is
    /// BAD_USER_INPUT with `extensions.line` and `extensions.column`.
    async fn upload_script(&self, ctx: &Context<'_>, input: ScriptInput) -> Result<Script> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        let stored = app
            .upload_script(
                caller.workspace_id,
                &input.name,
                &input.source,
                input.enabled,
            )
            .await?;
        Ok(Script(stored))
    }

    /// Turns a script on or off (DEVELOPER and up).
    async fn set_script_enabled(&self, ctx: &Context<'_>, id: ID, enabled: bool) -> Result<Script> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Script)?;
        let app = state(ctx)?;
        let updated = app
            .set_script_enabled(caller.workspace_id, id, enabled)
            .await?;
        Ok(Script(updated))
    }

    /// Deletes a script and its runs (DEVELOPER and up).
    async fn delete_script(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let caller = require(ctx, Role::Developer)?;
        let id = ids::decode_as(&id, NodeKind::Script)?;
        let app = state(ctx)?;
        app.delete_script(caller.workspace_id, id).await?;
        Ok(true)
    }

    /// Dry run: runs the source against a real subject and applies nothing
    /// (DEVELOPER and up). A syntax error is BAD_USER_INPUT with line and column.
    /// A run that fails (a thrown error, a limit) is reported in the result
    /// (`ok: false`, `error`, `logs`), or, with `failOnScriptError: true`, as
    /// a SCRIPT_ERROR error carrying the line and column where it failed.
    async fn test_script(
        &self,
        ctx: &Context<'_>,
        source: String,
        event: TestEventInput,
        #[graphql(default = false)] fail_on_script_error: bool,
    ) -> Result<ScriptTestResult> {
        let caller = require(ctx, Role::Developer)?;
        let app = state(ctx)?;
        let subject = match ids::decode(&event.subject_id)? {
            (NodeKind::Account, n) => (DomainKind::Account, n),
            (NodeKind::User, n) => (DomainKind::User, n),
            _ => {
                return Err(ApiError::bad_input(
                    "subjectId must be an account or user id",
                ));
            }
        };
        let segment_id = match &event.segment_id {
            Some(id) => Some(ids::decode_as(id, NodeKind::Segment)?),
            None => None,
        };
        let event = DryRunEvent {
            hook: event.kind.into(),
            subject,
            tag: event.tag,
            segment_id,
        };
        let outcome = app
            .dry_run_script(caller.workspace_id, &source, event)
            .await?;
        if fail_on_script_error && !outcome.ok {
            return Err(ApiError {
                code: Code::ScriptError,
                message: outcome.error.unwrap_or_else(|| "the script failed".into()),
                position: outcome.error_at,
            });
        }
        let planned: Vec<Planned> = outcome.actions;
        let (actions, attribute_changes) = split_actions(&apply::actions_json(&planned));
        Ok(ScriptTestResult {
            ok: outcome.ok,
            error: outcome.error,
            logs: outcome.logs,
            actions,
            attribute_changes,
            duration_micros: outcome.duration.as_micros() as i64,
        })
    }
}

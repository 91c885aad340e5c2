//! Automation: the outbox worker, Rhai scripts in a sandbox, and their runs.
//!
//! Invariant: scripts plan, the server applies. A script run reads a
//! snapshot and returns actions (`script/`, pure); the worker applies the
//! actions of successful runs through the tag write path (source SCRIPT,
//! actor = the script's name, cause = the triggering change, depth + 1) in
//! the same transaction that records the runs and marks the event done.
//! Boundary: `graphql/` calls `scripts` (upload, list, test) and
//! `server` starts the `worker`; the worker calls `tags` to apply plans.

pub mod apply;
pub mod events;
pub mod listener;
pub mod script;
pub mod scripts;
mod settings;
pub mod snapshot;
pub mod worker;

use crate::error::{Code, DbCause, ErrorCode, carry};

/// Errors of the automation domain.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error("{0}")]
    Compile(script::ScriptError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The thread that runs scripts failed (a panic): not the script's fault.
    #[error("script thread failed: {0}")]
    Thread(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl DbCause for AutomationError {
    fn into_db(self) -> Result<sea_orm::DbErr, Self> {
        match self {
            AutomationError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

impl From<crate::subjects::SubjectError> for AutomationError {
    fn from(error: crate::subjects::SubjectError) -> AutomationError {
        carry(error, AutomationError::Invalid)
    }
}

impl From<crate::tags::TagError> for AutomationError {
    fn from(error: crate::tags::TagError) -> AutomationError {
        carry(error, AutomationError::Invalid)
    }
}

impl From<crate::segments::SegmentError> for AutomationError {
    fn from(error: crate::segments::SegmentError) -> AutomationError {
        carry(error, AutomationError::Invalid)
    }
}

impl ErrorCode for AutomationError {
    fn code(&self) -> Code {
        match self {
            AutomationError::Compile(_) | AutomationError::Invalid(_) => Code::BadUserInput,
            AutomationError::NotFound(_) => Code::NotFound,
            AutomationError::Thread(_) | AutomationError::Db(_) => Code::Internal,
        }
    }

    fn position(&self) -> Option<(u32, u32)> {
        match self {
            AutomationError::Compile(e) => Some((e.line.unwrap_or(1), e.column.unwrap_or(1))),
            _ => None,
        }
    }
}

use crate::outbox::kind;

/// The hook a kind of event runs.
pub fn hook_of(kind: &str) -> Option<script::HookKind> {
    match kind {
        kind::TAG_ADDED => Some(script::HookKind::TagAdded),
        kind::TAG_REMOVED => Some(script::HookKind::TagRemoved),
        kind::SEGMENT_ENTERED => Some(script::HookKind::SegmentEntered),
        kind::SEGMENT_EXITED => Some(script::HookKind::SegmentExited),
        _ => None,
    }
}

/// Whether an event announces a segment entry or exit (its `change_id` is
/// then a `segment_changes` row) rather than a tag change.
pub fn is_segment_event(kind: &str) -> bool {
    matches!(kind, kind::SEGMENT_ENTERED | kind::SEGMENT_EXITED)
}

/// What led to the changes an event's automation makes: the tag change or
/// the segment entry/exit it announces.
pub fn cause_of(event: &entity::automation_event::Model) -> crate::tags::Cause {
    use crate::tags::Cause;
    match event.change_id {
        Some(id) if is_segment_event(&event.kind) => Cause::SegmentChange(id),
        Some(id) => Cause::TagChange(id),
        None => Cause::None,
    }
}

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

use crate::vocab::EventKind;

/// The hook a kind of event runs.
pub fn hook_of(kind: EventKind) -> script::HookKind {
    match kind {
        EventKind::TagAdded => script::HookKind::TagAdded,
        EventKind::TagRemoved => script::HookKind::TagRemoved,
        EventKind::SegmentEntered => script::HookKind::SegmentEntered,
        EventKind::SegmentExited => script::HookKind::SegmentExited,
    }
}

/// What led to the changes an event's automation makes: the tag change or
/// the segment entry/exit it announces.
pub fn cause_of(event: &entity::automation_event::Model) -> crate::tags::Cause {
    use crate::tags::Cause;
    match event.change_id {
        Some(id) if event.kind.is_segment_event() => Cause::SegmentChange(id),
        Some(id) => Cause::TagChange(id),
        None => Cause::None,
    }
}

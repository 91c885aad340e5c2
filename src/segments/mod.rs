//! Segments: the filter language (pure, in `filter/`), its SQL compiler
//! (`sql/`), saved segments (`store`), the stored membership of segments
//! with triggers and its re-evaluation on every change (`membership`), the
//! sweep of time-based segments (`sweep`), and tracked events (`activity`).
//!
//! Invariants: `filter/` does no IO and knows nothing of SQL connections or
//! GraphQL; `sql/` builds statements and never runs them. A tracked
//! segment's membership changes only through [`membership::record`], which
//! writes the history row and the outbox event (SEGMENT_ENTERED / EXITED)
//! in the caller's transaction. Boundary: called by `graphql/`, by the tag
//! write path (`tagging::assign`), by subject upserts and by the worker.

pub mod activity;
pub mod data;
pub mod explain;
pub mod filter;
pub mod membership;
pub mod sql;
pub mod store;
pub mod sweep;

use crate::error::{Code, ErrorCode};
use crate::tags::TagError;
use crate::vocab::SubjectKind as DomainKind;
use filter::{Diagnostic, SubjectKind};

impl From<DomainKind> for SubjectKind {
    fn from(kind: DomainKind) -> SubjectKind {
        match kind {
            DomainKind::Account => SubjectKind::Account,
            DomainKind::User => SubjectKind::User,
        }
    }
}

impl From<SubjectKind> for DomainKind {
    fn from(kind: SubjectKind) -> DomainKind {
        match kind {
            SubjectKind::Account => DomainKind::Account,
            SubjectKind::User => DomainKind::User,
        }
    }
}

/// Errors of the segments domain.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A filter that does not parse or type-check: every problem, in order.
    #[error("{}", render_diagnostics(.0))]
    Filter(Vec<Diagnostic>),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Tag(#[from] TagError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl crate::error::DbCause for SegmentError {
    fn into_db(self) -> Result<sea_orm::DbErr, Self> {
        match self {
            SegmentError::Db(e) | SegmentError::Tag(TagError::Db(e)) => Ok(e),
            other => Err(other),
        }
    }
}

fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let all: Vec<String> = diagnostics
        .iter()
        .map(|d| format!("filter line {}, column {}: {}", d.line, d.column, d.message))
        .collect();
    all.join("; ")
}

impl ErrorCode for SegmentError {
    fn code(&self) -> Code {
        match self {
            SegmentError::Filter(_) | SegmentError::Invalid(_) => Code::BadUserInput,
            SegmentError::NotFound(_) => Code::NotFound,
            SegmentError::Conflict(_) => Code::Conflict,
            SegmentError::Tag(e) => e.code(),
            SegmentError::Db(_) => Code::Internal,
        }
    }

    fn position(&self) -> Option<(u32, u32)> {
        match self {
            SegmentError::Filter(diagnostics) => diagnostics.first().map(|d| (d.line, d.column)),
            _ => None,
        }
    }
}

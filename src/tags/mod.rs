//! Tags: names and patterns, the one write path, history, the catalogue
//! and the change feed. Assignment, renames, merges and deletions, which
//! segments follow, are one layer up, in `tagging`.
//!
//! Invariant: every real tag change goes through [`write::apply`] (or
//! [`write::apply_locked`], its tag already locked) or
//! [`write::add_pairs`], which write the assignment, a `tag_changes` history row and an
//! `automation_events` outbox row in the caller's transaction. Nothing else
//! writes `tag_assignments`. Pure logic (`name`, `pattern`) does no IO.
//! Boundary: called by `graphql/`, import, the automation worker and
//! segments; knows nothing of GraphQL.

pub mod catalogue;
pub mod feed;
pub mod history;
pub mod name;
pub mod pattern;
pub mod store;
pub mod write;

use crate::error::{Code, ErrorCode};

pub use crate::vocab::{Cause, Op, Source};

impl crate::error::DbCause for TagError {
    fn into_db(self) -> Result<sea_orm::DbErr, Self> {
        match self {
            TagError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

/// Errors of the tags domain.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("{0}")]
    InvalidNames(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no tag named {0:?}")]
    NotFound(String),
    #[error("{0} not found")]
    SubjectNotFound(&'static str),
    #[error("a tag named {0:?} already exists; use mergeTags to combine the two")]
    RenameConflict(String),
    #[error("{0}")]
    TooMany(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ErrorCode for TagError {
    fn code(&self) -> Code {
        match self {
            TagError::InvalidNames(_) | TagError::Invalid(_) => Code::BadUserInput,
            TagError::NotFound(_) | TagError::SubjectNotFound(_) => Code::NotFound,
            TagError::RenameConflict(_) => Code::Conflict,
            TagError::TooMany(_) => Code::LimitExceeded,
            TagError::Db(_) => Code::Internal,
        }
    }
}

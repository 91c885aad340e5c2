//! Import and export: CSV and Excel files of users and accounts in,
//! segments, filters and tags out.
//!
//! Pure core: `header` (which column is which field), `rows` (a record
//! becomes a valid row or a reason, by line), `dedup` (the later row of a
//! key wins), `plan` (insert, update or conflict for a batch, given what
//! exists). IO at the edge: `read` (CSV through the `csv` crate, `.xlsx`
//! through `calamine`, record by record), `write` (batched, set-based
//! upserts, then tags through `tagging::assign::add_pairs` with source
//! IMPORT), `run` (the two passes: check, then write), `export` (pages of
//! members, CSV or NDJSON) and `cli` (progress and summary for the command
//! line).
//!
//! Invariant: every tag change goes through the one tag write path, so
//! history, automation and segment triggers see imported people; every
//! subject change is followed by `segments::membership::reevaluate` in the
//! same transaction. Boundary: called by `graphql/` and the CLI; knows
//! nothing of GraphQL.

pub mod cli;
pub mod dedup;
pub mod export;
pub mod header;
pub mod limits;
pub mod plan;
pub mod read;
pub mod rows;
pub mod run;
pub mod tags_cell;
pub mod write;

use crate::error::{Code, ErrorCode};

pub use header::Kind;
pub use rows::RowError;
pub use run::{Options, Summary};

/// Why a whole file is refused (nothing is written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty: it needs a header row")]
    Empty,
    #[error("{0}")]
    NotCsv(String),
    #[error("{0}")]
    BadHeader(String),
    #[error("{0}")]
    NotFound(String),
    /// Over one of the limits of `limits`.
    #[error("{0}")]
    TooLarge(String),
    #[error("cannot read {0}")]
    Io(String),
    #[error(transparent)]
    Tags(#[from] crate::tags::TagError),
    #[error(transparent)]
    Segments(#[from] crate::segments::SegmentError),
    #[error(transparent)]
    Subjects(#[from] crate::subjects::SubjectError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ErrorCode for ImportError {
    fn code(&self) -> Code {
        match self {
            ImportError::Empty | ImportError::NotCsv(_) | ImportError::BadHeader(_) => {
                Code::BadUserInput
            }
            ImportError::NotFound(_) => Code::NotFound,
            ImportError::TooLarge(_) => Code::LimitExceeded,
            ImportError::Tags(e) => e.code(),
            ImportError::Segments(e) => e.code(),
            ImportError::Subjects(e) => e.code(),
            ImportError::Io(_) | ImportError::Db(_) => Code::Internal,
        }
    }
}

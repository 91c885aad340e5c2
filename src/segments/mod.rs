//! Segments: the filter language (pure, in `filter/`), and later live
//! segments, membership and triggers.
//!
//! Invariant: `filter/` does no IO and knows nothing of SQL connections or GraphQL.

pub mod filter;
pub mod sql;

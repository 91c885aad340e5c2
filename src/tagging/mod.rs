//! Tagging: adding and removing tags on subjects, renaming, merging and
//! deleting tags, with the segments following in the same transaction
//! (tracked segments re-evaluate the subjects whose tags changed), and
//! baselining a segment.
//!
//! Above both `tags` (the write path, names, the catalogue) and `segments`
//! (membership), so that neither of them imports the other's reactions.
//! Invariant: every real tag change still goes through `tags::write`
//! (`apply`, or `add_pairs` for imports).

pub mod assign;
pub mod baseline;
pub mod delete;
pub mod merge;
pub mod rename;

use crate::segments::SegmentError;
use crate::tags::TagError;

impl From<SegmentError> for TagError {
    fn from(error: SegmentError) -> TagError {
        match error {
            SegmentError::Tag(e) => e,
            other => crate::error::carry(other, TagError::Invalid),
        }
    }
}

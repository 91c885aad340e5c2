//! The shared vocabulary: the words that cross domains (the kinds of
//! subject, what made a tag change and why, pages of rows). A leaf below
//! every domain, so that no domain imports another for its words.

pub mod page;

/// The words stored in vocabulary columns are the entity crate's typed
/// enums (`DeriveActiveEnum`): a model's field is already the word.
pub use entity::vocab::{DeliveryStatus, EventKind, EventStatus, Op, Source, SubjectKind};

/// What led to an automated change (stored on its history row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    /// Nothing automated: a change made through the API or an import.
    #[default]
    None,
    /// The tag change whose automation made this one.
    TagChange(i64),
    /// The segment entry or exit whose trigger or hook made this one.
    SegmentChange(i64),
}

impl Cause {
    pub fn tag_change(self) -> Option<i64> {
        match self {
            Cause::TagChange(id) => Some(id),
            _ => None,
        }
    }

    pub fn segment_change(self) -> Option<i64> {
        match self {
            Cause::SegmentChange(id) => Some(id),
            _ => None,
        }
    }
}

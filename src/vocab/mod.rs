//! The shared vocabulary: the words that cross domains (the kinds of
//! subject, what made a tag change and why, pages of rows). A leaf below
//! every domain, so that no domain imports another for its words.

pub mod page;

/// The two kinds of subject that carry tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    Account,
    User,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Account => "ACCOUNT",
            SubjectKind::User => "USER",
        }
    }

    /// The kind a stored `subject_kind` column names (`ACCOUNT`, else `USER`).
    pub fn from_stored(stored: &str) -> SubjectKind {
        if stored == SubjectKind::Account.as_str() {
            SubjectKind::Account
        } else {
            SubjectKind::User
        }
    }
}

/// Whether a change added or removed a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Added,
    Removed,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Added => "ADDED",
            Op::Removed => "REMOVED",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "ADDED" => Some(Op::Added),
            "REMOVED" => Some(Op::Removed),
            _ => None,
        }
    }
}

/// What made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One subject, through the API.
    Manual,
    /// Many subjects at once: bulk mutations, merges, deletions.
    Bulk,
    /// A CSV or Excel import.
    Import,
    /// A segment's entry or exit actions.
    Trigger,
    /// A Rhai script.
    Script,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Manual => "MANUAL",
            Source::Bulk => "BULK",
            Source::Import => "IMPORT",
            Source::Trigger => "TRIGGER",
            Source::Script => "SCRIPT",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "MANUAL" => Some(Source::Manual),
            "BULK" => Some(Source::Bulk),
            "IMPORT" => Some(Source::Import),
            "TRIGGER" => Some(Source::Trigger),
            "SCRIPT" => Some(Source::Script),
            _ => None,
        }
    }
}

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

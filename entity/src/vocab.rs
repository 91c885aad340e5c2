//! The words stored in vocabulary columns, as typed enums. The stored
//! strings are the ones the migrations' columns have always held (no
//! migration): an enum reads and writes exactly them. `tagsmith::vocab`
//! re-exports these as the shared vocabulary of the domains.

use sea_orm::entity::prelude::*;

/// The two kinds of subject that carry tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SubjectKind {
    #[sea_orm(string_value = "ACCOUNT")]
    Account,
    #[sea_orm(string_value = "USER")]
    User,
}

/// Whether a change added or removed a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Op {
    #[sea_orm(string_value = "ADDED")]
    Added,
    #[sea_orm(string_value = "REMOVED")]
    Removed,
}

/// What made a tag change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Source {
    /// One subject, through the API.
    #[sea_orm(string_value = "MANUAL")]
    Manual,
    /// Many subjects at once: bulk mutations, merges, deletions.
    #[sea_orm(string_value = "BULK")]
    Bulk,
    /// A CSV or Excel import.
    #[sea_orm(string_value = "IMPORT")]
    Import,
    /// A segment's entry or exit actions.
    #[sea_orm(string_value = "TRIGGER")]
    Trigger,
    /// A Rhai script.
    #[sea_orm(string_value = "SCRIPT")]
    Script,
}

/// Whether a subject entered or left a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MembershipOp {
    #[sea_orm(string_value = "ENTERED")]
    Entered,
    #[sea_orm(string_value = "EXITED")]
    Exited,
}

/// Why a subject was re-evaluated against the tracked segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum Reason {
    /// Its tags changed.
    #[sea_orm(string_value = "TAGS")]
    Tags,
    /// Its fields or attributes changed (upsert).
    #[sea_orm(string_value = "FIELDS")]
    Fields,
    /// An event was tracked for it.
    #[sea_orm(string_value = "EVENT")]
    Event,
    /// Its account or one of its users changed.
    #[sea_orm(string_value = "RELATED")]
    Related,
    /// Time passed (the sweep).
    #[sea_orm(string_value = "TIME")]
    Time,
}

/// The stored word of each enum, as a `&'static str` (for SQL built by
/// hand and for the wire).
macro_rules! as_str {
    ($($ty:ident { $($variant:ident => $word:literal),+ $(,)? })+) => {$(
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $word,)+
                }
            }
        }
    )+};
}

as_str! {
    SubjectKind { Account => "ACCOUNT", User => "USER" }
    Op { Added => "ADDED", Removed => "REMOVED" }
    Source { Manual => "MANUAL", Bulk => "BULK", Import => "IMPORT", Trigger => "TRIGGER", Script => "SCRIPT" }
    MembershipOp { Entered => "ENTERED", Exited => "EXITED" }
    Reason { Tags => "TAGS", Fields => "FIELDS", Event => "EVENT", Related => "RELATED", Time => "TIME" }
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum;
    use sea_orm::Iterable;

    use super::*;

    /// `as_str` is the stored word, for every variant of every enum.
    #[test]
    fn as_str_is_the_stored_word() {
        for v in SubjectKind::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in Op::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in Source::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in MembershipOp::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in Reason::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
    }
}

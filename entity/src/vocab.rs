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

/// What an outbox event announces (`automation_events.kind`,
/// `script_runs.event_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum EventKind {
    #[sea_orm(string_value = "TAG_ADDED")]
    TagAdded,
    #[sea_orm(string_value = "TAG_REMOVED")]
    TagRemoved,
    #[sea_orm(string_value = "SEGMENT_ENTERED")]
    SegmentEntered,
    #[sea_orm(string_value = "SEGMENT_EXITED")]
    SegmentExited,
}

impl EventKind {
    /// Whether it announces a segment entry or exit (its `change_id` is
    /// then a `segment_changes` row) rather than a tag change.
    pub fn is_segment_event(self) -> bool {
        matches!(self, EventKind::SegmentEntered | EventKind::SegmentExited)
    }
}

/// Where an outbox event stands (`automation_events.status`; lower case,
/// as the partial indexes of the migrations name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum EventStatus {
    /// Waiting for a worker (due at `run_at`).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Claimed by a worker, under a lease.
    #[sea_orm(string_value = "running")]
    Running,
    /// Handled.
    #[sea_orm(string_value = "done")]
    Done,
    /// Kept after its last attempt failed (or a cascade stopped).
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// Where a webhook delivery stands (`webhook_deliveries.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum DeliveryStatus {
    /// Due at `next_attempt_at` (or being attempted).
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Every attempt failed, or the answer said not to retry.
    #[sea_orm(string_value = "FAILED")]
    Failed,
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
    EventKind { TagAdded => "TAG_ADDED", TagRemoved => "TAG_REMOVED", SegmentEntered => "SEGMENT_ENTERED", SegmentExited => "SEGMENT_EXITED" }
    EventStatus { Pending => "pending", Running => "running", Done => "done", Failed => "failed" }
    DeliveryStatus { Pending => "PENDING", Succeeded => "SUCCEEDED", Failed => "FAILED" }
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
        for v in EventKind::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in EventStatus::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
        for v in DeliveryStatus::iter() {
            assert_eq!(v.as_str(), v.to_value());
        }
    }
}

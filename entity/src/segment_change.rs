use sea_orm::entity::prelude::*;

/// The history of a tracked segment's membership: each entry and exit.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "segment_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub workspace_id: i64,
    pub segment_id: i64,
    /// ACCOUNT or USER.
    pub subject_kind: crate::vocab::SubjectKind,
    pub subject_id: i64,
    /// ENTERED or EXITED.
    pub op: crate::vocab::MembershipOp,
    /// What led to the re-evaluation: TAGS, FIELDS, EVENT, RELATED or TIME.
    pub reason: crate::vocab::Reason,
    /// The tag change that led to it, when one did.
    pub cause_id: Option<i64>,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

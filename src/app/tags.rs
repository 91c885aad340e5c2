//! The tags service: bulk changes, whose target is a list of ids, a
//! segment's members or a filter's matches.

use super::AppState;
use crate::error::{ApiError, ApiResult, Code};
use crate::subjects::SubjectKind;
use crate::tagging::assign::{self, Actor, BulkOutcome, MAX_BULK_IDS};
use crate::tags::Op;
use crate::tags::write::Target;

/// The subjects a bulk change reaches: exactly one kind of target. `Id` is
/// a subject's id and `SegmentId` a segment's, as the caller holds them
/// (still encoded, or decoded by [`BulkTarget::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget<Id, SegmentId> {
    /// Accounts and users (they may mix), at most [`MAX_BULK_IDS`].
    Ids(Vec<Id>),
    /// The segment's members now.
    Segment(SegmentId),
    /// The subjects of this kind that the filter selects now.
    Filter(SubjectKind, String),
}

impl<Id, SegmentId> BulkTarget<Id, SegmentId> {
    /// The target the caller named: exactly one of `ids`, `segment`, or
    /// `kind` with `filter`; a list of ids within the limit (checked before
    /// any id is decoded).
    pub fn new(
        ids: Option<Vec<Id>>,
        segment: Option<SegmentId>,
        kind: Option<SubjectKind>,
        filter: Option<String>,
    ) -> ApiResult<Self> {
        match (ids, segment, kind, filter) {
            (Some(ids), None, None, None) if ids.len() > MAX_BULK_IDS => Err(ApiError::new(
                Code::LimitExceeded,
                format!(
                    "a bulk target holds at most {MAX_BULK_IDS} ids, not {}",
                    ids.len()
                ),
            )),
            (Some(ids), None, None, None) => Ok(BulkTarget::Ids(ids)),
            (None, Some(segment), None, None) => Ok(BulkTarget::Segment(segment)),
            (None, None, Some(kind), Some(filter)) => Ok(BulkTarget::Filter(kind, filter)),
            _ => Err(ApiError::bad_input(
                "give exactly one of: `ids`; `segmentId`; `subjectKind` with `filter`",
            )),
        }
    }

    /// The same target with its ids decoded; the first bad id fails it.
    pub fn decode(
        self,
        subject: impl Fn(&Id) -> ApiResult<(SubjectKind, i64)>,
        segment: impl Fn(&SegmentId) -> ApiResult<i64>,
    ) -> ApiResult<BulkTarget<(SubjectKind, i64), i64>> {
        Ok(match self {
            BulkTarget::Ids(ids) => {
                BulkTarget::Ids(ids.iter().map(subject).collect::<ApiResult<_>>()?)
            }
            BulkTarget::Segment(id) => BulkTarget::Segment(segment(&id)?),
            BulkTarget::Filter(kind, filter) => BulkTarget::Filter(kind, filter),
        })
    }
}

impl AppState {
    /// Adds or removes `names` on every subject of the target, in one
    /// transaction (all or nothing).
    pub async fn bulk_tags(
        &self,
        workspace_id: i64,
        target: BulkTarget<(SubjectKind, i64), i64>,
        names: &[String],
        op: Op,
        actor: Actor<'_>,
    ) -> ApiResult<BulkOutcome> {
        let (kind, select) = match target {
            BulkTarget::Ids(ids) => {
                return Ok(assign::bulk_by_ids(
                    &self.db,
                    workspace_id,
                    &ids,
                    names,
                    op,
                    actor,
                    &self.clock,
                )
                .await?);
            }
            BulkTarget::Segment(id) => self.segment_members(workspace_id, id).await?,
            BulkTarget::Filter(kind, filter) => (
                kind,
                self.filter_members(workspace_id, kind, &filter).await?,
            ),
        };
        let targets = [(kind, Target::Select(Box::new(select)))];
        Ok(assign::bulk(
            &self.db,
            workspace_id,
            &targets,
            names,
            op,
            actor,
            &self.clock,
        )
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Raw = BulkTarget<&'static str, &'static str>;

    fn check(target: ApiResult<Raw>, expected: Result<Raw, (Code, &str)>) {
        match (target, expected) {
            (Ok(target), Ok(expected)) => assert_eq!(target, expected),
            (Err(error), Err((code, message))) => {
                assert_eq!((error.code, error.message.as_str()), (code, message));
            }
            (target, expected) => panic!("{target:?} is not {expected:?}"),
        }
    }

    #[test]
    fn a_target_is_exactly_one_thing() {
        let ids = || Some(vec!["a", "b"]);
        let kind = Some(SubjectKind::User);
        let filter = || Some("tagged(\"VIP\")".to_owned());
        let not_one = Err((
            Code::BadUserInput,
            "give exactly one of: `ids`; `segmentId`; `subjectKind` with `filter`",
        ));
        check(
            Raw::new(ids(), None, None, None),
            Ok(BulkTarget::Ids(vec!["a", "b"])),
        );
        check(
            Raw::new(None, Some("s"), None, None),
            Ok(BulkTarget::Segment("s")),
        );
        check(
            Raw::new(None, None, kind, filter()),
            Ok(BulkTarget::Filter(
                SubjectKind::User,
                "tagged(\"VIP\")".into(),
            )),
        );
        check(Raw::new(None, None, None, None), not_one.clone());
        check(Raw::new(ids(), Some("s"), None, None), not_one.clone());
        check(Raw::new(None, None, kind, None), not_one.clone());
        check(Raw::new(None, None, None, filter()), not_one.clone());
        check(Raw::new(ids(), None, kind, filter()), not_one);
    }

    #[test]
    fn too_many_ids_are_refused_before_decoding() {
        let ids = vec!["not an id"; MAX_BULK_IDS + 1];
        check(
            Raw::new(Some(ids), None, None, None),
            Err((
                Code::LimitExceeded,
                "a bulk target holds at most 10000 ids, not 10001",
            )),
        );
        let at_limit = Raw::new(Some(vec!["x"; MAX_BULK_IDS]), None, None, None);
        assert!(at_limit.is_ok());
    }
}

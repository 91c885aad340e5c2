//! Explaining and previewing segments: why one subject is or is not a
//! member (the in-memory evaluator, part by part), and what saving a new
//! filter would do to the members (two set queries, compared).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::segment_membership;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::SegmentError;
use super::data::{self, Needs};
use super::filter::{SubjectKind, Trace, explain};
use super::membership::{Segments, matching_ids, stored_filter};
use super::store;
use crate::vocab::SubjectKind as DomainKind;

/// Why a subject is or is not in a segment now.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub member: bool,
    /// When the subject entered, while a member of a segment that keeps its
    /// membership.
    pub since: Option<DateTime<Utc>>,
    pub trace: Trace,
}

/// Evaluates the segment's filter for one subject, part by part.
pub async fn membership(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    segment_id: i64,
    kind: DomainKind,
    subject_id: i64,
    now: DateTime<Utc>,
) -> Result<Explanation, SegmentError> {
    let segment = store::find(db, workspace_id, segment_id)
        .await?
        .ok_or(SegmentError::NotFound("segment"))?;
    let segment_kind = segment.subject_kind;
    if segment_kind != kind {
        return Err(SegmentError::Invalid(format!(
            "segment {:?} holds {}, and this subject is not one",
            segment.name,
            SubjectKind::from(segment_kind).plural()
        )));
    }
    let filter = stored_filter(&segment).ok_or_else(|| {
        SegmentError::Invalid(format!(
            "the stored filter of segment {:?} no longer parses",
            segment.name
        ))
    })?;
    let segments = Segments::load(db, workspace_id).await?;
    let lookup = |name: &str| segments.filter(name);
    let reach = filter.reach(&lookup);
    let needs = Needs {
        account: reach.account,
        users: reach.users,
        events_since: reach.events_window.map(|seconds| {
            now - chrono::TimeDelta::try_seconds(seconds).unwrap_or(chrono::TimeDelta::MAX)
        }),
    };
    let mut found = match kind {
        DomainKind::User => data::users(db, workspace_id, &[subject_id], needs).await?,
        DomainKind::Account => data::accounts(db, workspace_id, &[subject_id], needs).await?,
    };
    let subject = found
        .remove(&subject_id)
        .ok_or(SegmentError::NotFound("subject"))?;
    let trace = explain(&filter, &subject, now, &lookup);
    let since = if segment.tracked && trace.value {
        segment_membership::Entity::find()
            .filter(segment_membership::Column::SegmentId.eq(segment.id))
            .filter(segment_membership::Column::SubjectId.eq(subject_id))
            .one(db)
            .await?
            .map(|m| m.entered_at)
    } else {
        None
    };
    Ok(Explanation {
        member: trace.value,
        since,
        trace,
    })
}

/// What saving a new filter on a segment would do, now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePreview {
    /// What the segment holds (the samples are of this kind).
    pub kind: DomainKind,
    pub entering: u64,
    pub exiting: u64,
    pub staying: u64,
    /// The first subjects (by id) that would enter, at most `sample`.
    pub entering_sample: Vec<i64>,
    /// The first subjects (by id) that would leave, at most `sample`.
    pub exiting_sample: Vec<i64>,
}

/// Counts who would enter, leave and stay if the segment's filter became
/// `text`, with samples; nothing is saved. Two queries (the members under
/// the filter now, under the new one) compared as sets.
pub async fn change(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    segment_id: i64,
    text: &str,
    sample: usize,
    now: DateTime<Utc>,
) -> Result<ChangePreview, SegmentError> {
    let segment = store::find(db, workspace_id, segment_id)
        .await?
        .ok_or(SegmentError::NotFound("segment"))?;
    let kind = segment.subject_kind;
    let (new_filter, segments) =
        store::check_filter(db, workspace_id, text, kind, Some(&segment.name)).await?;
    let current = match stored_filter(&segment) {
        Some(filter) => matching_ids(db, workspace_id, &filter, &segments, now).await?,
        None => HashSet::new(),
    };
    let next = matching_ids(db, workspace_id, &new_filter, &segments, now).await?;
    let first = |set: &HashSet<i64>, other: &HashSet<i64>| -> (u64, Vec<i64>) {
        let mut only: Vec<i64> = set.difference(other).copied().collect();
        only.sort_unstable();
        let count = only.len() as u64;
        only.truncate(sample);
        (count, only)
    };
    let (entering, entering_sample) = first(&next, &current);
    let (exiting, exiting_sample) = first(&current, &next);
    Ok(ChangePreview {
        kind,
        entering,
        exiting,
        staying: current.intersection(&next).count() as u64,
        entering_sample,
        exiting_sample,
    })
}

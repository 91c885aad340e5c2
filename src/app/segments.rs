//! The segments service: which subjects a filter or a segment selects now,
//! as a query the caller pages, counts or tags (the clock is the app's).

use entity::segment;
use sea_orm::sea_query::SelectStatement;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::segments::store;
use crate::subjects::SubjectKind;

impl AppState {
    /// The ids a filter selects now, checked against the workspace's segments.
    pub async fn filter_members(
        &self,
        workspace_id: i64,
        kind: SubjectKind,
        filter: &str,
    ) -> ApiResult<SelectStatement> {
        Ok(store::filter_members(&self.db, workspace_id, kind, filter, self.clock.now()).await?)
    }

    /// A segment's kind and the ids of its members now; NOT_FOUND when the
    /// workspace has no such segment.
    pub async fn segment_members(
        &self,
        workspace_id: i64,
        segment_id: i64,
    ) -> ApiResult<(SubjectKind, SelectStatement)> {
        let segment = store::find(&self.db, workspace_id, segment_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such segment"))?;
        self.members(workspace_id, &segment).await
    }

    /// A loaded segment's kind and the ids of its members now.
    pub async fn members(
        &self,
        workspace_id: i64,
        segment: &segment::Model,
    ) -> ApiResult<(SubjectKind, SelectStatement)> {
        Ok(store::members(&self.db, workspace_id, segment, self.clock.now()).await?)
    }
}

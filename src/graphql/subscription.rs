//! Subscriptions over WebSocket (graphql-transport-ws, and the older
//! graphql-ws) at /graphql. The API key goes in the `connection_init`
//! payload: `{"Authorization": "Bearer <key>"}`.

use super::Result;
use async_graphql::{Context, Subscription};
use futures_util::{Stream, StreamExt};

use crate::auth::Role;
use crate::tags::feed::FeedFilter;

use super::context::{loaders, require, state};
use super::tags::{SubjectKind, TagChange};

#[derive(Default)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every tag change committed in your workspace from now on, whoever
    /// made it (API, bulk, import, scripts, triggers), optionally only of one
    /// tag (by exact name) or one kind of subject. A subscriber that falls
    /// more than 4,096 changes behind skips the oldest.
    async fn tag_changes(
        &self,
        ctx: &Context<'_>,
        tag: Option<String>,
        subject_kind: Option<SubjectKind>,
    ) -> Result<impl Stream<Item = TagChange> + use<>> {
        let caller = require(ctx, Role::Viewer)?;
        let app = state(ctx)?;
        let filter = FeedFilter {
            workspace_id: caller.workspace_id,
            subject_kind: subject_kind.map(Into::into),
            tag,
        };
        let loaders = loaders(ctx)?.clone();
        let alive = app.metrics.subscription_stream();
        Ok(app.feed.changes(app.db.clone(), filter).map(move |change| {
            // Counted as open while the stream lives.
            let _ = &alive;
            // Fields read fresh rows: the connection lives long.
            loaders.clear();
            TagChange((*change).clone())
        }))
    }
}

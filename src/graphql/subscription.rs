//! Subscriptions over WebSocket (graphql-transport-ws, and the older
//! graphql-ws) at /graphql. The API key goes in the `connection_init`
//! payload: `{"Authorization": "Bearer <key>"}`.

use async_graphql::{Context, Result, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Role;
use crate::subjects::SubjectKind as DomainKind;

use super::context::{require, state};
use super::loaders::Loaders;
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
        let workspace_id = caller.workspace_id;
        let app = state(ctx)?;
        let db = app.db.clone();
        let receiver = app.feed.subscribe();
        let kind: Option<DomainKind> = subject_kind.map(Into::into);
        let loaders = ctx.data::<Loaders>()?.clone();
        let alive = app.metrics.subscription_stream();
        Ok(futures_util::stream::unfold(
            (receiver, db, loaders, alive),
            move |(mut receiver, db, loaders, alive)| {
                let tag = tag.clone();
                async move {
                    loop {
                        let change = match receiver.recv().await {
                            Ok(change) => change,
                            Err(RecvError::Lagged(skipped)) => {
                                tracing::warn!(skipped, "a subscriber fell behind");
                                continue;
                            }
                            Err(RecvError::Closed) => return None,
                        };
                        if change.workspace_id != workspace_id {
                            continue;
                        }
                        if let Some(kind) = kind
                            && change.subject_kind != kind.as_str()
                        {
                            continue;
                        }
                        if let Some(name) = &tag {
                            let tags =
                                crate::tags::store::find_many(&db, workspace_id, &[change.tag_id])
                                    .await
                                    .unwrap_or_default();
                            if !tags.iter().any(|t| &t.name == name) {
                                continue;
                            }
                        }
                        // Fields read fresh rows: the connection lives long.
                        loaders.clear();
                        return Some((
                            TagChange((*change).clone()),
                            (receiver, db, loaders, alive),
                        ));
                    }
                }
            },
        ))
    }
}

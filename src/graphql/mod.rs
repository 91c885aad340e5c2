//! The GraphQL edge: schema assembly, request context, auth checks, error
//! codes, DataLoaders and the HTTP routes.
//!
//! Invariant: the only module that knows async-graphql and axum. Resolvers
//! stay thin: read the caller, call one domain function, convert the result.

mod auth;
mod automation;
mod connection;
pub mod cost;
pub(crate) use crate::ids;
mod context;
pub mod http;
mod import;
mod limits;
mod loaders;
pub mod ops;
mod order;
mod segments;
mod subjects;
mod subscription;
mod tags;
mod webhooks;
pub mod websocket;

use std::sync::Arc;

use async_graphql::{MergedObject, Schema};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::automation::script::{Limits as ScriptLimits, ScriptEngine};
use crate::automation::scripts::Scripts;
use crate::automation::worker::{Worker, WorkerSettings};
use crate::config::{AutomationSettings, ProductionSettings, QueryLimits};
use crate::metrics::Metrics;
use crate::server::Shutdown;
use crate::tags::feed::ChangeFeed;
use crate::tags::name::{TagName, TagRules};
use crate::time::Clock;

pub use context::RequestAuth;

/// What every resolver can reach: the database, the scripts (with their
/// compiled cache, shared with the worker) and the worker's wake-up call.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub scripts: Arc<Scripts>,
    pub wake: Arc<Notify>,
    /// Committed tag changes, for subscriptions (started by `server::start`).
    pub feed: ChangeFeed,
    /// What segment filters read as `now` (tests move it forward).
    pub clock: Clock,
    /// Counters for `/metrics`, shared with the worker.
    pub metrics: Arc<Metrics>,
    /// How webhooks are checked (the allow-list) and delivered.
    pub webhooks: Arc<crate::webhooks::dispatch::Settings>,
    /// The webhook dispatcher's wake-up call (deliveries were queued).
    pub webhook_wake: Arc<Notify>,
}

impl AppState {
    /// The state of a server on `db`, with scripts sandboxed by `limits`.
    pub fn new(db: DatabaseConnection, limits: ScriptLimits) -> Self {
        let engine = ScriptEngine::new(limits).with_tag_check(|name| {
            // The worker checks again under the workspace's own rules.
            let rules = TagRules {
                lowercase: false,
                max_depth: 10,
            };
            TagName::parse(name, rules)
                .map(|n| n.as_str().to_owned())
                .map_err(|e| format!("tag {name:?} {e}"))
        });
        AppState {
            db,
            scripts: Arc::new(Scripts::new(engine)),
            wake: Arc::new(Notify::new()),
            feed: ChangeFeed::default(),
            clock: Clock::system(),
            metrics: Arc::default(),
            webhooks: Arc::default(),
            webhook_wake: Arc::new(Notify::new()),
        }
    }

    /// This state with these webhook settings (`--webhook-allow-hosts`, the
    /// retry schedule...).
    pub fn with_webhooks(mut self, settings: crate::webhooks::dispatch::Settings) -> Self {
        self.webhooks = Arc::new(settings);
        self
    }

    /// A worker sharing this state's scripts and wake-up call.
    pub fn worker(&self, settings: WorkerSettings) -> Worker {
        Worker {
            db: self.db.clone(),
            scripts: Arc::clone(&self.scripts),
            wake: Arc::clone(&self.wake),
            settings,
            batches: Default::default(),
            clock: self.clock.clone(),
            metrics: Arc::clone(&self.metrics),
            next: Default::default(),
            feed: self.feed.clone(),
            listener: Some(Arc::new(crate::webhooks::enqueue::WebhookListener {
                wake: Arc::clone(&self.webhook_wake),
            })),
        }
    }

    /// Starts the automation worker, the sweep of time-based segments and
    /// the webhook dispatcher, all stopping at `shutdown`.
    pub fn spawn_automation(
        &self,
        settings: &AutomationSettings,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let worker = self.worker(settings.worker());
        let dispatcher = crate::webhooks::dispatch::Dispatcher::new(
            self.db.clone(),
            Arc::clone(&self.webhooks),
            Arc::clone(&self.webhook_wake),
            Arc::clone(&self.metrics),
        );
        let deliveries = {
            let shutdown = shutdown.clone();
            async move {
                match dispatcher {
                    Ok(dispatcher) => dispatcher.run(shutdown.wait()).await,
                    Err(e) => tracing::error!(error = %e, "webhooks will not be delivered"),
                }
            }
        };
        let sweep = crate::segments::sweep::run(
            self.db.clone(),
            self.clock.clone(),
            settings.sweep_interval(),
            Arc::clone(&self.wake),
            shutdown.clone().wait(),
        );
        tokio::spawn(async move {
            tokio::join!(worker.run(shutdown.wait()), sweep, deliveries);
        })
    }
}

#[derive(MergedObject, Default)]
pub struct Query(
    subjects::SubjectQuery,
    tags::TagQuery,
    segments::SegmentQuery,
    automation::AutomationQuery,
    auth::AuthQuery,
    webhooks::WebhookQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    subjects::SubjectMutation,
    tags::TagMutation,
    segments::SegmentMutation,
    automation::AutomationMutation,
    auth::AuthMutation,
    import::ImportMutation,
    webhooks::WebhookMutation,
);

pub type TagsmithSchema = Schema<Query, Mutation, subscription::Subscription>;

/// Builds the schema with its limits; `state` is reachable from every resolver.
pub fn build_schema(state: Option<AppState>, limits: &QueryLimits) -> TagsmithSchema {
    build_schema_with(
        state,
        limits,
        &ProductionSettings::default(),
        Checks::InSchema,
    )
}

/// Where a request's token cap and NUL check ([`limits::refuse`]) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// In a schema extension: for the operations of WebSocket connections,
    /// which async-graphql-axum executes.
    InSchema,
    /// Before execution, by the HTTP handlers (`http::execute`): a schema
    /// without extensions resolves each field directly instead of through
    /// the extensions' hooks.
    BeforeExecution,
}

/// [`build_schema`], with introspection or suggestions turned off as
/// `production` says, and the request checks where `checks` says.
pub fn build_schema_with(
    state: Option<AppState>,
    limits: &QueryLimits,
    production: &ProductionSettings,
    checks: Checks,
) -> TagsmithSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .register_output_type::<subjects::Node>()
    // Depth is measured by `limits::refuse` (with introspection by its
    // own rules), before any of async-graphql's checks walk the document.
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(limits.max_recursive_depth)
    .limit_directives(limits.max_directives);
    if checks == Checks::InSchema {
        builder = builder
            .extension(limits::RequestLimits {
                limits: limits.clone(),
            })
            .extension(ops::ResponseCodes {
                metrics: state.as_ref().map(|s| Arc::clone(&s.metrics)),
            });
    }
    if production.no_introspection {
        builder = builder.disable_introspection();
    }
    if production.no_suggestions {
        builder = builder.disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The schema in SDL, as `tagsmith export-schema` prints it and `schema.graphql` holds it.
pub fn schema_sdl() -> String {
    build_schema(None, &QueryLimits::default()).sdl()
}

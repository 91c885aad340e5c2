//! The application layer: one [`AppState`] of services that both doors, the
//! CLI (`main.rs`) and the GraphQL API (`graphql/`), call.
//!
//! Invariant: whatever one door does (upload a script, create a key, import
//! a file), the other does through the same function here, never a copy.
//! A service owns the rules that span domains (a script upload keeps the
//! segments' stored membership in step); the domains below know nothing of
//! this layer, of async-graphql or of axum.

pub mod references;
mod scripts;
mod segments;
mod tags;
pub mod wakeup;

pub use scripts::DryRunEvent;
pub use tags::BulkTarget;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::auth::keys::KeyCache;
use crate::automation::script::{Limits as ScriptLimits, ScriptEngine};
use crate::automation::scripts::Scripts;
use crate::automation::worker::{Worker, WorkerSettings};
use crate::config::AutomationSettings;
use crate::metrics::Metrics;
use crate::tags::feed::ChangeFeed;
use crate::tags::name::{TagName, TagRules};
use crate::time::Clock;

/// The services both doors share: the database, the scripts (with their
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
    /// The API keys read lately (`server::start` sets its time to live).
    pub keys: Arc<KeyCache>,
}

/// The script engine of every door, sandboxed by `limits`: what `script
/// check` compiles with is what an upload and the worker compile with.
pub fn script_engine(limits: ScriptLimits) -> ScriptEngine {
    ScriptEngine::new(limits).with_tag_check(|name| {
        // The worker checks again under the workspace's own rules.
        let rules = TagRules {
            lowercase: false,
            max_depth: 10,
        };
        TagName::parse(name, rules)
            .map(|n| n.as_str().to_owned())
            .map_err(|e| format!("tag {name:?} {e}"))
    })
}

impl AppState {
    /// The state of a server on `db`, with scripts sandboxed by `limits`.
    pub fn new(db: DatabaseConnection, limits: ScriptLimits) -> Self {
        AppState {
            db,
            scripts: Arc::new(Scripts::new(script_engine(limits))),
            wake: Arc::new(Notify::new()),
            feed: ChangeFeed::default(),
            clock: Clock::system(),
            metrics: Arc::default(),
            webhooks: Arc::default(),
            webhook_wake: Arc::new(Notify::new()),
            keys: Arc::default(),
        }
    }

    /// This state with these webhook settings (`--webhook-allow-hosts`, the
    /// retry schedule...).
    pub fn with_webhooks(mut self, settings: crate::webhooks::dispatch::Settings) -> Self {
        self.webhooks = Arc::new(settings);
        self
    }

    /// Tells the automation worker that new events may be waiting, and the
    /// change feed that new changes are committed.
    pub fn committed(&self) {
        self.wake.notify_one();
        self.feed.committed();
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

    /// Starts the automation worker, the sweep of time-based segments, the
    /// webhook dispatcher and their wake-ups from other processes
    /// ([`wakeup`]), all stopping at `shutdown`.
    pub fn spawn_automation(
        &self,
        settings: &AutomationSettings,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let worker = self.worker(settings.worker());
        let dispatcher = crate::webhooks::dispatch::Dispatcher::new(
            self.db.clone(),
            Arc::new(crate::webhooks::dispatch::Settings {
                poll_interval: settings.poll_interval(),
                ..(*self.webhooks).clone()
            }),
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
        let wakeups = wakeup::run(
            self.db.clone(),
            wakeup::Wakers {
                automation: Arc::clone(&self.wake),
                webhooks: Arc::clone(&self.webhook_wake),
            },
            shutdown.clone().wait(),
        );
        tokio::spawn(async move {
            tokio::join!(worker.run(shutdown.wait()), sweep, deliveries, wakeups);
        })
    }
}

/// A shutdown that several tasks (server, worker) can wait for.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// A shutdown that happens when `signal` resolves.
    pub fn on(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    /// Resolves once the shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

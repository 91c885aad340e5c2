//! Settings, read once at start-up from flags and environment variables.

use clap::Args;

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseSettings {
    /// Database URL: `sqlite://FILE` (created when missing) or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://tagsmith.db")]
    pub database_url: String,
    /// Largest number of pooled database connections.
    #[arg(long, env = "TAGSMITH_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

/// How the HTTP server behaves.
#[derive(Debug, Clone, Args)]
pub struct ServerSettings {
    /// Address to listen on.
    #[arg(long, env = "TAGSMITH_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Largest request body in bytes.
    #[arg(long, env = "TAGSMITH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long a client has to send a request's headers, in milliseconds,
    /// from the connection's start or the end of its previous request; past
    /// it the connection is closed.
    #[arg(long, env = "TAGSMITH_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// How long a client has to send a request's body, in milliseconds;
    /// past it the request is answered 408.
    #[arg(long, env = "TAGSMITH_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// Require an API key for schema introspection too.
    #[arg(
        long,
        env = "TAGSMITH_REQUIRE_KEY_FOR_INTROSPECTION",
        default_value_t = false
    )]
    pub require_key_for_introspection: bool,
    /// Most operations (subscriptions, and queries still running) one
    /// WebSocket connection may have open at once.
    #[arg(
        long,
        env = "TAGSMITH_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_subscriptions_per_connection: usize,
    /// Most WebSocket operations one API key may have open at once on this server.
    #[arg(
        long,
        env = "TAGSMITH_MAX_SUBSCRIPTIONS_PER_KEY",
        default_value_t = 1_000
    )]
    pub max_subscriptions_per_key: usize,
    /// How long a server trusts an API key it has read, in milliseconds (0:
    /// it reads the key on every request). A key revoked through this
    /// server stops at once; one revoked through another server or the CLI
    /// stops here within this long.
    #[arg(long, env = "TAGSMITH_API_KEY_CACHE_MS", default_value_t = 1_000)]
    pub api_key_cache_ms: u64,
    #[command(flatten)]
    pub limits: QueryLimits,
    #[command(flatten)]
    pub production: ProductionSettings,
}

impl Default for ServerSettings {
    /// The flags' defaults.
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            require_key_for_introspection: false,
            max_subscriptions_per_connection: 100,
            max_subscriptions_per_key: 1_000,
            api_key_cache_ms: 1_000,
            limits: QueryLimits::default(),
            production: ProductionSettings::default(),
        }
    }
}

/// What a public deployment turns off, and who may read `/metrics`.
#[derive(Debug, Clone, Default, Args)]
pub struct ProductionSettings {
    /// Refuse schema introspection (`__schema`, `__type`) for every caller, with FORBIDDEN.
    #[arg(long, env = "TAGSMITH_NO_INTROSPECTION", default_value_t = false)]
    pub no_introspection: bool,
    /// Do not serve the GraphiQL playground at `/` (404 instead).
    #[arg(long, env = "TAGSMITH_NO_GRAPHIQL", default_value_t = false)]
    pub no_graphiql: bool,
    /// Leave "Did you mean ...?" suggestions out of validation errors.
    #[arg(long, env = "TAGSMITH_NO_SUGGESTIONS", default_value_t = false)]
    pub no_suggestions: bool,
    /// Do not serve `/metrics` (404 instead).
    #[arg(long, env = "TAGSMITH_NO_METRICS", default_value_t = false)]
    pub no_metrics: bool,
    /// Serve `/metrics` only to `Authorization: Bearer <this token>` (default: to anyone who can reach the port).
    #[arg(long, env = "TAGSMITH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

impl ServerSettings {
    /// [`Self::header_timeout_ms`] (at least 10 ms).
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.header_timeout_ms.max(10))
    }

    /// [`Self::body_timeout_ms`] (at least 10 ms).
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.body_timeout_ms.max(10))
    }
}

/// Limits on what one GraphQL request may ask.
#[derive(Debug, Clone, Args)]
pub struct QueryLimits {
    /// Deepest selection nesting allowed (outside introspection).
    #[arg(long, env = "TAGSMITH_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Most fields in one operation once every fragment spread is replaced
    /// by its fragment (measured before anything runs).
    #[arg(long, env = "TAGSMITH_MAX_FIELDS", default_value_t = 2_000)]
    pub max_fields: u64,
    /// Deepest nesting inside `__schema` / `__type` (the `ofType` chains of
    /// introspection queries).
    #[arg(long, env = "TAGSMITH_MAX_INTROSPECTION_DEPTH", default_value_t = 20)]
    pub max_introspection_depth: u64,
    /// Largest estimated introspection answer of one operation, in values
    /// (the full introspection query of graphql-js is about 50,000).
    #[arg(
        long,
        env = "TAGSMITH_MAX_INTROSPECTION_COST",
        default_value_t = 100_000
    )]
    pub max_introspection_cost: u64,
    /// Largest query complexity (each field counts 1, lists multiply by `first`).
    #[arg(long, env = "TAGSMITH_MAX_COMPLEXITY", default_value_t = 5000)]
    pub max_complexity: usize,
    /// Deepest recursion of the query document (fragments, nested values).
    #[arg(long, env = "TAGSMITH_MAX_RECURSIVE_DEPTH", default_value_t = 32)]
    pub max_recursive_depth: usize,
    /// Most directives on one field.
    #[arg(long, env = "TAGSMITH_MAX_DIRECTIVES", default_value_t = 8)]
    pub max_directives: usize,
    /// Most tokens (names, values, punctuators) in one query document,
    /// checked before it is parsed.
    #[arg(long, env = "TAGSMITH_MAX_TOKENS", default_value_t = 10_000)]
    pub max_tokens: usize,
    /// Longest a query or mutation may run, in milliseconds: past it the
    /// work is stopped (a mutation's transaction rolls back) and the answer
    /// is LIMIT_EXCEEDED. A client that goes away stops its request too.
    #[arg(long, env = "TAGSMITH_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Most operations in one batched request.
    #[arg(long, env = "TAGSMITH_MAX_BATCH", default_value_t = 10)]
    pub max_batch: usize,
}

impl QueryLimits {
    /// How long one operation may run.
    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.request_timeout_ms)
    }
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_depth: 12,
            max_fields: 2_000,
            max_introspection_depth: 20,
            max_introspection_cost: 100_000,
            max_complexity: 5000,
            max_recursive_depth: 32,
            max_directives: 8,
            max_tokens: 10_000,
            request_timeout_ms: 30_000,
            max_batch: 10,
        }
    }
}

/// Where a standalone worker (`tagsmith worker`) serves `/healthz` and `/metrics`.
#[derive(Debug, Clone, Args)]
pub struct WorkerHttpSettings {
    /// Serve `/healthz` and `/metrics` (this worker's script runs, the outbox backlog) on this address, e.g. 127.0.0.1:9091 (default: none).
    #[arg(long, env = "TAGSMITH_WORKER_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Serve `/metrics` only to `Authorization: Bearer <this token>`.
    #[arg(long, env = "TAGSMITH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// The sandbox of script runs: what every door compiles and runs scripts
/// with (`serve`, `worker`, `script check`, `script upload`).
#[derive(Debug, Clone, Args)]
pub struct ScriptSettings {
    /// Wall-clock budget of one script run, in milliseconds.
    #[arg(long, env = "TAGSMITH_SCRIPT_TIMEOUT_MS", default_value_t = 50)]
    pub script_timeout_ms: u64,
    /// Rhai operations one script run may perform.
    #[arg(
        long,
        env = "TAGSMITH_SCRIPT_MAX_OPERATIONS",
        default_value_t = 100_000
    )]
    pub script_max_operations: u64,
    /// Bytes of output one script run may plan: its tag names, and its
    /// attribute keys with their values as JSON (0: no limit). A run that
    /// plans more fails, with nothing applied.
    #[arg(
        long,
        env = "TAGSMITH_SCRIPT_MAX_OUTPUT_BYTES",
        default_value_t = 256 * 1024
    )]
    pub script_max_output_bytes: usize,
    /// Bytes of a user's or account's attributes (as JSON) that a script
    /// run may leave after its changes (0: no limit). A run that would
    /// leave more fails, with nothing applied.
    #[arg(long, env = "TAGSMITH_MAX_ATTRIBUTES_BYTES", default_value_t = 64 * 1024)]
    pub max_attributes_bytes: usize,
}

impl Default for ScriptSettings {
    fn default() -> Self {
        ScriptSettings {
            script_timeout_ms: 50,
            script_max_operations: 100_000,
            script_max_output_bytes: 256 * 1024,
            max_attributes_bytes: 64 * 1024,
        }
    }
}

/// How automation runs.
#[derive(Debug, Clone, Args)]
pub struct AutomationSettings {
    /// Do not run the automation worker in this process (run `tagsmith worker` elsewhere).
    #[arg(long, env = "TAGSMITH_NO_WORKER", default_value_t = false)]
    pub no_worker: bool,
    /// Deepest cascade of automated changes; a deeper one stops with an error.
    #[arg(long, env = "TAGSMITH_AUTOMATION_MAX_DEPTH", default_value_t = 8)]
    pub automation_max_depth: i32,
    /// Attempts at an automation event before it is kept as failed.
    #[arg(long, env = "TAGSMITH_AUTOMATION_MAX_ATTEMPTS", default_value_t = 5)]
    pub automation_max_attempts: i32,
    /// How often the automation worker and the webhook dispatcher look for
    /// work nobody told them of, in milliseconds: a safety net, since the
    /// writes of every process wake them at once (LISTEN/NOTIFY on
    /// PostgreSQL, a 15 ms look at the database files on SQLite).
    #[arg(long, env = "TAGSMITH_AUTOMATION_POLL_MS", default_value_t = 1_000)]
    pub automation_poll_ms: u64,
    /// How long a worker's claim on an event lasts, in milliseconds; a
    /// worker that dies (a crash, `kill -9`) leaves its events to be claimed
    /// again once it expires. Keep it well above the slowest batch.
    #[arg(long, env = "TAGSMITH_AUTOMATION_LEASE_MS", default_value_t = 60_000)]
    pub automation_lease_ms: u64,
    /// The sandbox of script runs.
    #[command(flatten)]
    pub scripts: ScriptSettings,
    /// Runs kept per script (older ones are deleted).
    #[arg(long, env = "TAGSMITH_SCRIPT_RUNS_KEPT", default_value_t = 1000)]
    pub script_runs_kept: u64,
    /// How often segments whose filters read the clock (`now - 30d`,
    /// `events(..., 7d)`) are re-evaluated, in milliseconds.
    #[arg(long, env = "TAGSMITH_SEGMENT_SWEEP_MS", default_value_t = 60_000)]
    pub segment_sweep_ms: u64,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
}

/// How webhooks are checked and delivered.
#[derive(Debug, Clone, Args)]
pub struct WebhookSettings {
    /// Hosts or IP addresses webhooks may reach although they are private,
    /// loopback or link-local, over `http://` too (comma-separated, e.g.
    /// `127.0.0.1,hooks.internal`). Everything else must be public `https://`.
    #[arg(
        long,
        env = "TAGSMITH_WEBHOOK_ALLOW_HOSTS",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub webhook_allow_hosts: Vec<String>,
    /// Waits before each retry of a failed delivery (comma-separated
    /// durations: `ms`, `s`, `m`, `h`), each with up to 10% of jitter; after
    /// the last one the delivery is FAILED.
    #[arg(
        long,
        env = "TAGSMITH_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub webhook_retry_schedule: String,
    /// How long one delivery attempt may take, in milliseconds (connecting,
    /// sending and the response's headers); past it the attempt failed.
    #[arg(long, env = "TAGSMITH_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000)]
    pub webhook_timeout_ms: u64,
    /// Attempts in flight at once to one webhook (each webhook has its own).
    #[arg(long, env = "TAGSMITH_WEBHOOK_CONCURRENCY", default_value_t = 4)]
    pub webhook_concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            webhook_allow_hosts: Vec::new(),
            webhook_retry_schedule: "5s,5m,30m,2h,5h,10h,10h".into(),
            webhook_timeout_ms: 15_000,
            webhook_concurrency: 4,
        }
    }
}

impl Default for AutomationSettings {
    fn default() -> Self {
        AutomationSettings {
            no_worker: false,
            automation_max_depth: 8,
            automation_max_attempts: 5,
            automation_poll_ms: 1_000,
            automation_lease_ms: 60_000,
            scripts: ScriptSettings::default(),
            script_runs_kept: 1000,
            segment_sweep_ms: 60_000,
            webhooks: WebhookSettings::default(),
        }
    }
}

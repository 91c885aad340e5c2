//! `TestApp::builder()...spawn()`: a real tagsmith server on port 0 with a
//! fresh database.

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tagsmith::app::{AppState, Shutdown};
use tagsmith::config::{AutomationSettings, DatabaseSettings, ScriptSettings, ServerSettings};
use tagsmith::time::Clock;
use tagsmith::{db, server};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` as two tests: `NAME::sqlite` and
/// `NAME::postgres` (the latter is skipped, saying so, when
/// `TAGSMITH_TEST_DATABASE_URL` is not set). `settings = NAME;` first runs
/// them on servers with those [`Settings`] (a `const` of the calling module).
#[macro_export]
macro_rules! on_both_databases {
    (settings = $settings:ident; $($name:ident),+ $(,)?) => {
        $crate::on_both_databases!(@with (super::$settings) $($name),+);
    };
    ($($name:ident),+ $(,)?) => {
        $crate::on_both_databases!(@with ($crate::helpers::Settings::DEFAULT) $($name),+);
    };
    (@with ($settings:expr) $($name:ident),+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::TestApp::builder()
                    .settings($settings)
                    .spawn_sqlite()
                    .await;
                super::$name(app).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::TestApp::builder()
                    .backend($crate::helpers::Backend::Postgres)
                    .settings($settings)
                    .spawn()
                    .await;
                match app {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("skipped: TAGSMITH_TEST_DATABASE_URL is not set"),
                }
            }
        }
    )+};
}

/// How a test's server differs from the defaults: changes to its server
/// settings and to its automation settings.
#[derive(Clone, Copy)]
pub struct Settings {
    pub server: fn(&mut ServerSettings),
    pub automation: fn(&mut AutomationSettings),
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        server: |_| {},
        automation: |_| {},
    };

    /// No automation worker: the test drives the outbox itself, or counts
    /// statements the worker's would interleave with.
    pub const NO_WORKER: Settings = Settings {
        server: |_| {},
        automation: |a| a.no_worker = true,
    };
}

/// How to start a test's server: `TestApp::builder()`, then the backend
/// (SQLite unless told), changes to the server and automation settings
/// (applied in the order given), and `spawn` (`None` when PostgreSQL is not
/// configured) or `spawn_sqlite`.
#[must_use]
pub struct AppBuilder<'a> {
    backend: Backend,
    server: Vec<Adjust<'a, ServerSettings>>,
    automation: Vec<Adjust<'a, AutomationSettings>>,
}

/// One change to settings of type `S`.
type Adjust<'a, S> = Box<dyn FnOnce(&mut S) + Send + 'a>;

impl<'a> AppBuilder<'a> {
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Changes the server settings.
    pub fn server(mut self, adjust: impl FnOnce(&mut ServerSettings) + Send + 'a) -> Self {
        self.server.push(Box::new(adjust));
        self
    }

    /// Changes the automation settings.
    pub fn automation(mut self, adjust: impl FnOnce(&mut AutomationSettings) + Send + 'a) -> Self {
        self.automation.push(Box::new(adjust));
        self
    }

    /// Applies a [`Settings`] (as `on_both_databases!` does).
    pub fn settings(self, settings: Settings) -> Self {
        self.server(settings.server).automation(settings.automation)
    }

    /// Starts the server; `None` when the backend is PostgreSQL and
    /// `TAGSMITH_TEST_DATABASE_URL` is not set.
    pub async fn spawn(self) -> Option<TestApp> {
        let AppBuilder {
            backend,
            server,
            automation,
        } = self;
        start(
            backend,
            |settings| server.into_iter().for_each(|adjust| adjust(settings)),
            |settings| automation.into_iter().for_each(|adjust| adjust(settings)),
        )
        .await
    }

    /// Starts the server on SQLite, which is always available.
    pub async fn spawn_sqlite(self) -> TestApp {
        self.backend(Backend::Sqlite)
            .spawn()
            .await
            .expect("SQLite is always available")
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The ADMIN key of the `default` workspace, made on first start.
    pub admin_key: String,
    /// The server's database, for the `tagsmith` CLI (see [`tagsmith`]).
    pub database_url: String,
    pub db: DatabaseConnection,
    /// The clock segment filters read; `advance` moves it forward.
    pub clock: Clock,
    /// Every SQL statement the server ran, in order (see `statements_during`).
    pub statements: Arc<Mutex<Vec<String>>>,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

/// A throwaway PostgreSQL database, dropped with the test.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // The test's runtime is going away: drop the database from a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(conn) = Database::connect(&admin_url).await {
                    let _ = conn
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn")
                .with_test_writer()
                .init();
        }
    });
}

impl TestApp {
    /// A server to start (see [`AppBuilder`]).
    pub fn builder<'a>() -> AppBuilder<'a> {
        AppBuilder {
            backend: Backend::Sqlite,
            server: Vec::new(),
            automation: Vec::new(),
        }
    }
}

/// Starts the server with adjusted server and automation settings.
async fn start(
    backend: Backend,
    adjust: impl FnOnce(&mut ServerSettings),
    adjust_automation: impl FnOnce(&mut AutomationSettings),
) -> Option<TestApp> {
    init_logs();
    let FreshDatabase {
        url: database_url,
        _sqlite_dir: sqlite_dir,
        _postgres: postgres,
    } = fresh_database(backend).await?;
    let database = DatabaseSettings {
        database_url: database_url.clone(),
        db_max_connections: 8,
    };
    let mut conn = db::connect(&database).await.expect("connect");
    let statements = Arc::new(Mutex::new(Vec::new()));
    let log = statements.clone();
    conn.set_metric_callback(move |info| {
        if let Ok(mut log) = log.lock() {
            log.push(info.statement.sql.clone());
        }
    });
    db::migrate(&conn).await.expect("migrate");
    // The SQLite read path's statements count too (the file exists now).
    let log = statements.clone();
    tagsmith::sqlite_read::observe(&conn, move |sql| {
        if let Ok(mut log) = log.lock() {
            log.push(sql.to_owned());
        }
    });
    let key = server::bootstrap(&conn)
        .await
        .expect("bootstrap")
        .expect("an empty database makes a first key");
    let mut settings = ServerSettings {
        bind: "127.0.0.1:0".into(),
        ..ServerSettings::default()
    };
    adjust(&mut settings);
    // Debug builds on a busy machine: give well-behaved scripts time.
    let mut automation = AutomationSettings {
        scripts: ScriptSettings {
            script_timeout_ms: 5_000,
            ..ScriptSettings::default()
        },
        ..AutomationSettings::default()
    };
    adjust_automation(&mut automation);
    let app = AppState::new(conn.clone(), automation.script_limits()).with_webhooks(
        tagsmith::webhooks::dispatch::Settings::from_config(&automation.webhooks)
            .expect("webhook settings"),
    );
    if !automation.no_worker {
        app.spawn_automation(&automation, Shutdown::on(std::future::pending()));
    }
    let clock = app.clock.clone();
    let running = server::start(app, settings, std::future::pending())
        .await
        .expect("start server");
    Some(TestApp {
        address: format!("http://{}", running.addr),
        client: reqwest::Client::new(),
        admin_key: key.secret,
        database_url,
        db: conn,
        clock,
        statements,
        _sqlite_dir: sqlite_dir,
        _postgres: postgres,
    })
}

/// An empty database of its own for a test: a temp SQLite file, or a new
/// database on the `TAGSMITH_TEST_DATABASE_URL` server (`None` when unset).
/// Removed when dropped.
pub struct FreshDatabase {
    pub url: String,
    _sqlite_dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresDatabase>,
}

pub async fn fresh_database(backend: Backend) -> Option<FreshDatabase> {
    Some(match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("tagsmith.db").display());
            FreshDatabase {
                url,
                _sqlite_dir: Some(dir),
                _postgres: None,
            }
        }
        Backend::Postgres => {
            let admin_url = postgres_url()?;
            let name = format!("tagsmith_test_{}", random_suffix());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to TAGSMITH_TEST_DATABASE_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            admin.close().await.expect("close");
            let base = admin_url
                .rsplit_once('/')
                .map(|(base, _)| base.to_owned())
                .expect("database URL has a path");
            FreshDatabase {
                url: format!("{base}/{name}"),
                _sqlite_dir: None,
                _postgres: Some(PostgresDatabase { admin_url, name }),
            }
        }
    })
}

/// The `name`s of a list of objects (tags, segments, ...).
pub fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

const SUBJECT_TAGS: &str = "query($id: ID!) { node(id: $id) { ... on User { tags { name } } ... on Account { tags { name } } } }";

/// A subject's tags now.
pub async fn tags_of(app: &TestApp, id: &str) -> Vec<String> {
    let data = app.ok(SUBJECT_TAGS, json!({ "id": id })).await;
    names(&data["node"]["tags"])
}

/// A subject's tags once the worker has handled every event.
pub async fn settled_tags(app: &TestApp, id: &str) -> Vec<String> {
    drained(app).await;
    tags_of(app, id).await
}

/// The one number a SQL query answers (`SELECT COUNT(*) ...`).
pub async fn count(db: &impl ConnectionTrait, sql: &str) -> i64 {
    let backend = db.get_database_backend();
    db.query_one_raw(sea_orm::Statement::from_string(backend, sql.to_owned()))
        .await
        .expect("count")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a number")
}

/// `TAGSMITH_TEST_DATABASE_URL`; `None` when unset (the PostgreSQL half of
/// a test is then skipped), unless `TAGSMITH_TEST_REQUIRE_POSTGRES=1` (CI),
/// which makes a skip a failure.
fn postgres_url() -> Option<String> {
    let url = std::env::var("TAGSMITH_TEST_DATABASE_URL").ok();
    let required = std::env::var("TAGSMITH_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    assert!(
        url.is_some() || !required,
        "TAGSMITH_TEST_REQUIRE_POSTGRES=1 but TAGSMITH_TEST_DATABASE_URL is not set"
    );
    url
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TestApp {
    /// Runs a GraphQL operation with the ADMIN key; returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(Some(&self.admin_key), query, variables)
            .await
    }

    /// Runs a GraphQL operation with the given key (or none).
    pub async fn graphql_as(&self, key: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        response.json().await.expect("JSON response")
    }

    /// Runs an operation that must succeed; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.graphql(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
        body["data"].clone()
    }

    /// Posts raw bytes to /graphql with a content type; returns status and body text.
    pub async fn post_raw(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .header("content-type", content_type)
            .bearer_auth(&self.admin_key)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// GETs a path of the server, without a key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request")
    }

    /// Creates a key of `role` in the default workspace; returns its secret.
    pub async fn key(&self, name: &str, role: &str) -> String {
        let data = self
            .ok(
                "mutation($name: String!, $role: Role!) { createApiKey(name: $name, role: $role) { secret } }",
                json!({ "name": name, "role": role }),
            )
            .await;
        data["createApiKey"]["secret"]
            .as_str()
            .expect("secret")
            .to_owned()
    }

    /// Creates another workspace and returns its ADMIN key.
    pub async fn other_workspace(&self, name: &str) -> String {
        let txn = db::begin_write(&self.db).await.expect("txn");
        let ws = tagsmith::auth::workspaces::create(&txn, name)
            .await
            .expect("workspace");
        let key = tagsmith::auth::keys::create(&txn, ws.id, "admin", tagsmith::auth::Role::Admin)
            .await
            .expect("key");
        txn.commit().await.expect("commit");
        key.secret
    }

    /// Creates a user by email; returns its id.
    pub async fn user(&self, email: &str) -> String {
        let data = self
            .ok(
                "mutation($email: String!) { upsertUser(input: { email: $email }) { id } }",
                json!({ "email": email }),
            )
            .await;
        data["upsertUser"]["id"].as_str().expect("id").to_owned()
    }

    /// Creates an account; returns its id.
    pub async fn account(&self, external_id: &str, name: &str) -> String {
        let data = self
            .ok(
                "mutation($x: String!, $n: String!) { upsertAccount(input: { externalId: $x, name: $n }) { id } }",
                json!({ "x": external_id, "n": name }),
            )
            .await;
        data["upsertAccount"]["id"].as_str().expect("id").to_owned()
    }

    /// Runs `f` and returns the SQL statements the server ran meanwhile for
    /// the request's data. Left out: the background tasks' (the worker polls
    /// and claims the outbox meanwhile: statements naming
    /// `automation_events` or setting its claim's `plan_cache_mode`; the
    /// webhook dispatcher polls `webhook_deliveries`) and the API key's
    /// lookup (the key cache makes it depend on how long ago the key was
    /// last read).
    pub async fn statements_during<F: Future>(&self, f: F) -> (F::Output, Vec<String>) {
        let start = self.statements.lock().unwrap().len();
        let output = f.await;
        let all = self.statements.lock().unwrap();
        let own = all[start..]
            .iter()
            .filter(|sql| {
                ![
                    "automation_events",
                    "plan_cache_mode",
                    "webhook_deliveries",
                    "api_keys",
                ]
                .iter()
                .any(|background| sql.contains(background))
            })
            .cloned()
            .collect();
        (output, own)
    }

    /// Counts the rows of a table (test bookkeeping, straight from the database).
    pub async fn rows(&self, table: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await
            .expect("count")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("count")
    }

    /// The number of users in the default workspace.
    pub async fn user_count(&self) -> i64 {
        self.ok("{ users { totalCount } }", json!({})).await["users"]["totalCount"]
            .as_i64()
            .expect("count")
    }
}

/// The `extensions.code` of the first error of a response.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body:#}"))
}

/// The message of the first error of a response.
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

/// Waits until `query` returns data for which `done` holds (the worker is asynchronous).
pub async fn eventually(
    app: &TestApp,
    query: &str,
    vars: Value,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let data = app.ok(query, vars.clone()).await;
        if done(&data) {
            return data;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out; last: {data:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the outbox has nothing pending or running (one statement,
/// so an event finishing while its follow-up is written is never missed).
pub async fn drained(app: &TestApp) {
    let started = Instant::now();
    while app
        .rows("automation_events WHERE status IN ('pending', 'running')")
        .await
        > 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the outbox did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the real `tagsmith` binary on the database at `url`; returns
/// (success, stdout, stderr).
pub fn tagsmith(url: &str, args: &[&str]) -> (bool, String, String) {
    tagsmith_in(None, url, args, &[("TAGSMITH_LOG", Some("warn"))])
}

/// [`tagsmith`] in the directory `dir` (else this one), with environment
/// variables set (`Some`) or removed (`None`).
pub fn tagsmith_in(
    dir: Option<&std::path::Path>,
    url: &str,
    args: &[&str],
    env: &[(&str, Option<&str>)],
) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tagsmith"));
    command.args(args).args(["--database-url", url]);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let output = command.output().expect("run tagsmith");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

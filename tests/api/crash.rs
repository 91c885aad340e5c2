//! Crash safety (issue #8, item 7): a rolled-back tag change leaves
//! nothing behind; `kill -9` of the real binary in the middle of a burst of
//! automation, then a restart, loses and doubles nothing; two servers on
//! one PostgreSQL database never handle one event twice.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use tagsmith::subjects::SubjectKind;
use tagsmith::tagging::assign::{Actor, apply_to_targets};
use tagsmith::tags::name::{TagName, TagRules};
use tagsmith::tags::write::Target;
use tagsmith::tags::{Cause, Op, Source};

use crate::helpers::{Backend, TestApp, count, drained, fresh_database};
use crate::on_both_databases;

on_both_databases!(a_rolled_back_tag_change_leaves_no_trace);

const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";

/// Tags two users inside a write transaction through the one tag write
/// path, sees the rows it wrote, then fails midway (a unique violation) and
/// drops the transaction, as an `?` does: no tag, assignment, history row
/// or outbox event remains, and the worker never hears of it.
async fn a_rolled_back_tag_change_leaves_no_trace(app: TestApp) {
    let ana = app.user("ana@example.com").await;
    let bo = app.user("bo@example.com").await;
    let mut ids = Vec::new();
    for email in ["ana@example.com", "bo@example.com"] {
        ids.push(
            count(
                &app.db,
                &format!("SELECT id FROM users WHERE email = '{email}'"),
            )
            .await,
        );
    }
    let workspace_id = count(
        &app.db,
        "SELECT workspace_id FROM users WHERE email = 'ana@example.com'",
    )
    .await;
    let before = (
        app.rows("tags").await,
        app.rows("tag_assignments").await,
        app.rows("tag_changes").await,
        app.rows("automation_events").await,
    );
    let names: Vec<TagName> = ["Doomed", "Doomed/child", "Region: Nowhere"]
        .iter()
        .map(|n| {
            TagName::parse(
                n,
                TagRules {
                    lowercase: false,
                    max_depth: 3,
                },
            )
            .unwrap()
        })
        .collect();
    {
        let txn = tagsmith::db::begin_write(&app.db).await.expect("txn");
        let outcome = apply_to_targets(
            &txn,
            workspace_id,
            &[(SubjectKind::User, Target::Ids(ids.clone()))],
            &names,
            Op::Added,
            Actor {
                source: Source::Bulk,
                name: Some("doomed"),
                cause: Cause::None,
                depth: 0,
            },
            &app.clock,
        )
        .await
        .expect("the write itself succeeds");
        assert_eq!(outcome.changed, 6);
        // The rows are there, inside the transaction.
        assert_eq!(
            count(&*txn, "SELECT COUNT(*) FROM tag_assignments").await,
            before.1 + 6
        );
        assert_eq!(
            count(&*txn, "SELECT COUNT(*) FROM tag_changes").await,
            before.2 + 6
        );
        assert_eq!(
            count(&*txn, "SELECT COUNT(*) FROM automation_events").await,
            before.3 + 6
        );
        // Then a later statement of the same transaction fails.
        let backend = txn.get_database_backend();
        let failed = txn
            .execute_raw(Statement::from_string(
                backend,
                "INSERT INTO tag_assignments SELECT * FROM tag_assignments".to_owned(),
            ))
            .await;
        assert!(failed.is_err(), "a duplicate assignment is refused");
        // The caller's `?` drops the transaction here, uncommitted.
    }
    let after = (
        app.rows("tags").await,
        app.rows("tag_assignments").await,
        app.rows("tag_changes").await,
        app.rows("automation_events").await,
    );
    assert_eq!(after, before, "tags, assignments, history, outbox");

    // Through the API too; and a committed change afterwards is whole.
    let data = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on User { tags { name } history(first: 10) { nodes { op } } } } }",
            json!({ "id": ana }),
        )
        .await;
    assert_eq!(data["node"]["tags"], json!([]));
    assert_eq!(data["node"]["history"]["nodes"], json!([]));
    assert!(
        app.ok("{ tag(name: \"Doomed\") { name } }", json!({}))
            .await["tag"]
            .is_null()
    );
    app.ok(ADD, json!({ "id": bo, "tags": ["Kept"] })).await;
    drained(&app).await;
    assert_eq!(app.rows("tag_changes").await, before.2 + 1);
    assert_eq!(app.rows("automation_events").await, before.3 + 1);
    assert_eq!(
        app.rows("automation_events WHERE status = 'done'").await,
        before.3 + 1
    );
}

/// The follow-on the worker applies: "In n" brings "Out n". The loop makes
/// each run take a few milliseconds, so the worker lags behind the burst
/// and events are pending (and some running) when the server is killed.
const ECHO: &str = r#"
fn on_tag_added(e) {
    if e.tag.starts_with("In ") {
        let x = 0;
        for i in 0..4000 { x += i; }
        e.subject.add_tag("Out " + e.tag.sub_string(3));
    }
}
"#;

/// A `tagsmith serve` process; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    address: String,
    /// The ADMIN key, printed on the first start only.
    key: Option<String>,
}

impl Server {
    /// Starts the binary on `database_url` and waits until it listens.
    fn start(database_url: &str, lease_ms: u64) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
                "--db-max-connections",
                "8",
                "--automation-lease-ms",
                &lease_ms.to_string(),
                // Debug builds on a busy machine: give the echo script time.
                "--script-timeout-ms",
                "5000",
            ])
            .env("TAGSMITH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start tagsmith serve");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    // Nobody listens any more: keep draining the pipe.
                    continue;
                }
            }
        });
        // From here on, a panic kills the process (Drop).
        let mut server = Server {
            child,
            address: String::new(),
            key: None,
        };
        loop {
            let line = received
                .recv_timeout(Duration::from_secs(120))
                .expect("tagsmith serve printed where it listens");
            let trimmed = line.trim();
            if trimmed.starts_with("tsk_") {
                server.key = Some(trimmed.to_owned());
            }
            if let Some(rest) = trimmed.strip_prefix("tagsmith: listening on http://") {
                let address = rest.split('/').next().expect("an address");
                server.address = format!("http://{address}");
                return server;
            }
        }
    }

    /// `kill -9`.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends an operation; `Err` when the server did not answer (it was killed).
async fn send(
    http: &reqwest::Client,
    address: &str,
    key: &str,
    query: &str,
    variables: Value,
) -> Result<Value, reqwest::Error> {
    http.post(format!("{address}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?
        .json()
        .await
}

async fn must(http: &reqwest::Client, address: &str, key: &str, query: &str, vars: Value) -> Value {
    let body = send(http, address, key, query, vars)
        .await
        .expect("an answer");
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
    body["data"].clone()
}

async fn open(url: &str) -> DatabaseConnection {
    tagsmith::db::connect(&tagsmith::config::DatabaseSettings {
        database_url: url.to_owned(),
        db_max_connections: 2,
    })
    .await
    .expect("connect")
}

async fn unfinished(db: &DatabaseConnection) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM automation_events WHERE status IN ('pending', 'running')",
    )
    .await
}

/// Makes `n` users through `address`; returns their ids.
async fn users(http: &reqwest::Client, address: &str, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let data = must(
            http,
            address,
            key,
            "mutation($email: String!) { upsertUser(input: { email: $email }) { id } }",
            json!({ "email": format!("u{i}@example.com") }),
        )
        .await;
        ids.push(data["upsertUser"]["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Every "In n" added has exactly one "Out n" added on the same subject:
/// returns (ins, outs missing, outs doubled).
async fn echo_tally(db: &DatabaseConnection) -> (i64, i64, i64) {
    let ins = count(
        db,
        "SELECT COUNT(*) FROM tag_changes c JOIN tags t ON t.id = c.tag_id \
         WHERE t.name LIKE 'In %' AND c.op = 'ADDED'",
    )
    .await;
    // For each "In" change, how many "Out" changes of its number and subject.
    let outs_of = "(SELECT COUNT(*) FROM tag_changes o JOIN tags ot ON ot.id = o.tag_id \
         WHERE o.subject_kind = c.subject_kind AND o.subject_id = c.subject_id AND o.op = 'ADDED' \
         AND ot.name = 'Out ' || SUBSTR(t.name, 4))";
    let missing = count(
        db,
        &format!(
            "SELECT COUNT(*) FROM tag_changes c JOIN tags t ON t.id = c.tag_id \
             WHERE t.name LIKE 'In %' AND c.op = 'ADDED' AND {outs_of} = 0"
        ),
    )
    .await;
    let doubled = count(
        db,
        &format!(
            "SELECT CAST(COALESCE(SUM({outs_of} - 1), 0) AS BIGINT) FROM tag_changes c JOIN tags t ON t.id = c.tag_id \
             WHERE t.name LIKE 'In %' AND c.op = 'ADDED' AND {outs_of} > 1"
        ),
    )
    .await;
    (ins, missing, doubled)
}

/// Users the burst spreads over.
const USERS: usize = 20;
/// addTags requests in the burst, and clients sending them at once.
const BURST: usize = 400;
const CLIENTS: usize = 16;
/// The lease of the restarted server's worker on the dead one's events.
const LEASE_MS: u64 = 2_000;

async fn kill_nine_in_a_burst(backend: Backend) {
    let Some(database) = fresh_database(backend).await else {
        eprintln!("skipped: TAGSMITH_TEST_DATABASE_URL is not set");
        return;
    };
    let mut server = Server::start(&database.url, LEASE_MS);
    let key = server.key.clone().expect("the first start prints a key");
    let http = reqwest::Client::new();
    let address = server.address.clone();
    must(
        &http,
        &address,
        &key,
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "echo", "source": ECHO } }),
    )
    .await;
    let ids = Arc::new(users(&http, &address, &key, USERS).await);
    let db = open(&database.url).await;

    // The burst: BURST requests "In i" on user i % USERS, CLIENTS at a time.
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let refused = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, address, key) = (http.clone(), address.clone(), key.clone());
            let (next, acked, refused, ids) =
                (next.clone(), acked.clone(), refused.clone(), ids.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= BURST {
                        return;
                    }
                    let vars = json!({ "id": ids[i % USERS], "tags": [format!("In {i}")] });
                    match send(&http, &address, &key, ADD, vars).await {
                        Ok(body) if body.get("errors").is_none() => acked.lock().unwrap().push(i),
                        Ok(body) => refused.lock().unwrap().push(body.to_string()),
                        Err(_) => {} // killed: no answer, outcome unknown to the client
                    }
                }
            })
        })
        .collect();
    // Kill once a third of the burst is acknowledged and the worker is busy.
    let (killed_at, unfinished_at_kill, running_at_kill, done_at_kill) = loop {
        let done = acked.lock().unwrap().len();
        if done >= BURST / 3 {
            // Best while the worker holds a batch (running events, which
            // only a lease's expiry gives back).
            let running = count(
                &db,
                "SELECT COUNT(*) FROM automation_events WHERE status = 'running'",
            )
            .await;
            if running > 0 || done >= BURST * 9 / 10 {
                server.kill();
                let running = count(
                    &db,
                    "SELECT COUNT(*) FROM automation_events WHERE status = 'running'",
                )
                .await;
                let finished = count(
                    &db,
                    "SELECT COUNT(*) FROM automation_events WHERE status = 'done'",
                )
                .await;
                break (done, unfinished(&db).await, running, finished);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for client in clients {
        client.await.expect("client task");
    }
    let refused = refused.lock().unwrap().clone();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(
        unfinished_at_kill > 0,
        "killed with nothing pending ({killed_at} acknowledged): the test did not test"
    );

    // Restart on the same database and wait for the outbox to drain. The
    // dead server's running events come back when their lease expires
    // (LEASE_MS); the bound is generous for a loaded debug build.
    let restarted = Instant::now();
    let server = Server::start(&database.url, LEASE_MS);
    assert!(server.key.is_none(), "a restart makes no new key");
    while unfinished(&db).await > 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(120),
            "the outbox did not drain after the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = restarted.elapsed();

    // Every acknowledged change is there with its follow-on, exactly once.
    for i in &acked {
        let user = must(
            &http,
            &server.address,
            &key,
            "query($id: ID!) { node(id: $id) { ... on User { tags { name } } } }",
            json!({ "id": ids[i % USERS] }),
        )
        .await;
        let names: Vec<&str> = user["node"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for wanted in [format!("In {i}"), format!("Out {i}")] {
            assert_eq!(
                names.iter().filter(|n| **n == wanted).count(),
                1,
                "{wanted} on user {}",
                i % USERS
            );
        }
    }
    let (ins, missing, doubled) = echo_tally(&db).await;
    assert!(ins >= acked.len() as i64);
    assert_eq!(missing, 0, "committed changes whose follow-on was lost");
    assert_eq!(doubled, 0, "follow-ons applied twice");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM automation_events WHERE status <> 'done'"
        )
        .await,
        0,
        "nothing pending, running or failed"
    );
    let reclaimed = count(
        &db,
        "SELECT COUNT(*) FROM automation_events WHERE attempts > 1",
    )
    .await;
    let events = count(&db, "SELECT COUNT(*) FROM automation_events").await;
    let runs = count(&db, "SELECT COUNT(*) FROM script_runs").await;
    let runs_per_event = count(
        &db,
        "SELECT COUNT(*) FROM (SELECT event_id FROM script_runs GROUP BY event_id HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(runs_per_event, 0, "one recorded run per event");
    eprintln!(
        "kill -9 ({backend:?}): {BURST} addTags fired by {CLIENTS} clients, killed after {killed_at} \
         acknowledged ({} acknowledged in all, {} committed), {unfinished_at_kill} events unfinished at \
         the kill ({running_at_kill} running, {done_at_kill} done); after the restart: {events} events all done, \
         {reclaimed} claimed again after the lease, {runs} script runs recorded; lost: {missing}, \
         doubled: {doubled}; drained {drain:?} after the restart (lease {LEASE_MS} ms)",
        acked.len(),
        ins
    );
    db.close().await.ok();
    drop(server);
}

mod kill_nine {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::kill_nine_in_a_burst(super::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::kill_nine_in_a_burst(super::Backend::Postgres).await;
    }
}

/// Two whole servers (two processes, each with its worker) on one
/// PostgreSQL database, written to alternately: every event is claimed
/// once, and every change's follow-on is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_postgres_never_handle_an_event_twice() {
    let Some(database) = fresh_database(Backend::Postgres).await else {
        eprintln!("skipped: TAGSMITH_TEST_DATABASE_URL is not set");
        return;
    };
    let first = Server::start(&database.url, 60_000);
    let key = first.key.clone().expect("the first start prints a key");
    let second = Server::start(&database.url, 60_000);
    let http = reqwest::Client::new();
    must(
        &http,
        &first.address,
        &key,
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "echo", "source": ECHO } }),
    )
    .await;
    let ids = Arc::new(users(&http, &second.address, &key, USERS).await);
    let addresses = Arc::new([first.address.clone(), second.address.clone()]);
    let next = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, key, next, ids, addresses) = (
                http.clone(),
                key.clone(),
                next.clone(),
                ids.clone(),
                addresses.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= BURST {
                        return;
                    }
                    let vars = json!({ "id": ids[i % USERS], "tags": [format!("In {i}")] });
                    must(&http, &addresses[i % 2], &key, ADD, vars).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }
    let db = open(&database.url).await;
    let started = Instant::now();
    while unfinished(&db).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the outbox did not drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ins, missing, doubled) = echo_tally(&db).await;
    assert_eq!(ins, BURST as i64);
    assert_eq!((missing, doubled), (0, 0));
    let events = count(&db, "SELECT COUNT(*) FROM automation_events").await;
    assert_eq!(events, 2 * BURST as i64, "the ins and their outs");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM automation_events WHERE status <> 'done' OR attempts <> 1"
        )
        .await,
        0,
        "every event claimed exactly once, and done"
    );
    eprintln!(
        "two servers: {BURST} addTags through both, {events} events, each claimed once; \
         lost: {missing}, doubled: {doubled}"
    );
    db.close().await.ok();
}

//! tagsmith's benchmark harness: a real server on this machine, real HTTP.
//!
//! ```sh
//! cargo bench --bench tagsmith -- [--users N] [--seconds S] [--concurrency C] [--postgres URL]
//! ```
//! Seeds N users (default 100,000) into a fresh database (a temp SQLite file,
//! or a new database on the PostgreSQL server of URL), then measures:
//! - `addTags` on one user through HTTP: mutations/s, p50, p99;
//! - bulk add of one tag to every seeded user through the one write path
//!   (the set-based statement a segment or filter target uses), and the same
//!   through the API as `bulkAddTags` calls of 10,000 ids each;
//! - listing 50 users with tags and account through HTTP;
//! - automation: from an `addTags` commit to the script's follow-up change,
//!   p50/p99, under a steady load of other tag changes; events handled per
//!   second; the cost of one hook run with a cached AST.
//!
//! Prints a Markdown table for BENCHMARKS.md.

use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;
use tagsmith::config::{DatabaseSettings, QueryLimits, ServerSettings};
use tagsmith::subjects::SubjectKind;
use tagsmith::tags::assign::{Actor, apply_to_targets};
use tagsmith::tags::write::Target;
use tagsmith::tags::{Op, Source};
use tagsmith::{db, server};

struct Args {
    users: usize,
    seconds: u64,
    concurrency: usize,
    postgres: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        users: 100_000,
        seconds: 10,
        concurrency: 8,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--users" => args.users = value().parse().expect("--users N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds S"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency C"),
            "--postgres" => args.postgres = Some(value()),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Latencies of one scenario.
struct Sample {
    name: String,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn row(&mut self) -> String {
        self.latencies.sort();
        let pct = |p: f64| {
            if self.latencies.is_empty() {
                return "-".to_owned();
            }
            let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            format!(
                "{:.2}",
                self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
            )
        };
        format!(
            "| {} | {} | {:.3} | {:.0} | {} | {} |",
            self.name,
            self.count,
            self.elapsed.as_secs_f64(),
            self.count as f64 / self.elapsed.as_secs_f64(),
            pct(0.5),
            pct(0.99)
        )
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (url, label) = match &args.postgres {
        Some(admin_url) => {
            let name = format!("tagsmith_bench_{}", std::process::id());
            let admin = Database::connect(admin_url)
                .await
                .expect("connect to PostgreSQL");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .await
                .expect("drop");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create");
            let base = admin_url.rsplit_once('/').expect("URL with a database").0;
            (format!("{base}/{name}"), "PostgreSQL")
        }
        None => (
            format!("sqlite://{}", tmp.path().join("bench.db").display()),
            "SQLite",
        ),
    };
    let settings = DatabaseSettings {
        database_url: url,
        db_max_connections: 16,
    };
    let conn = db::connect(&settings).await.expect("connect");
    db::migrate(&conn).await.expect("migrate");
    let key = server::bootstrap(&conn)
        .await
        .expect("bootstrap")
        .expect("fresh");
    let app = tagsmith::graphql::AppState::new(conn.clone(), Default::default());
    tokio::spawn(
        app.worker(Default::default())
            .run(std::future::pending::<()>()),
    );
    let running = server::start(
        app,
        ServerSettings {
            bind: "127.0.0.1:0".into(),
            max_body_bytes: 4 << 20,
            require_key_for_introspection: false,
            limits: QueryLimits::default(),
        },
        std::future::pending(),
    )
    .await
    .expect("server");
    let endpoint = format!("http://{}/graphql", running.addr);
    let client = reqwest::Client::new();

    eprintln!("seeding {} users on {label}...", args.users);
    let started = Instant::now();
    let ids = seed(&conn, args.users).await;
    eprintln!("seeded in {:.1}s", started.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    rows.push(add_tags(&client, &endpoint, &key.secret, &ids, &args).await);
    rows.push(bulk_write_path(&conn, args.users).await);
    rows.push(bulk_api(&client, &endpoint, &key.secret, &ids).await);
    rows.push(list_users(&client, &endpoint, &key.secret, &args).await);
    rows.push(hook_run());
    rows.push(automation_latency(&conn, &client, &endpoint, &key.secret, &ids, &args).await);
    rows.push(events_per_second(&conn, &client, &endpoint, &key.secret, &ids).await);

    println!(
        "\n{label}, {} users, concurrency {}, {} s per timed scenario\n",
        args.users, args.concurrency, args.seconds
    );
    println!("| scenario | operations | seconds | per second | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for mut row in rows {
        println!("{}", row.row());
    }
}

/// Inserts `n` users with one statement per 5,000; returns their ids.
async fn seed(conn: &DatabaseConnection, n: usize) -> Vec<i64> {
    let now = chrono::Utc::now();
    let mut ids = Vec::with_capacity(n);
    let backend = conn.get_database_backend();
    for start in (0..n).step_by(5000) {
        let end = (start + 5000).min(n);
        let mut insert = Query::insert();
        insert.into_table("users").columns([
            "workspace_id",
            "email",
            "attributes",
            "created_at",
            "updated_at",
        ]);
        for i in start..end {
            insert.values_panic([
                1i64.into(),
                format!("user{i}@example.com").into(),
                json!({}).into(),
                now.into(),
                now.into(),
            ]);
        }
        conn.execute(&insert).await.expect("seed");
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM users ORDER BY id",
        ))
        .await
        .expect("ids");
    for row in rows {
        ids.push(row.try_get_by_index::<i64>(0).expect("id"));
    }
    ids
}

fn global_id(kind: &str, id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = client
        .post(endpoint)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let value: serde_json::Value = response.json().await.expect("JSON");
    assert!(value.get("errors").is_none(), "errors: {value}");
    value
}

/// `addTags` of one of 50 tags on a random user, from C clients for S seconds.
async fn add_tags(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let query = "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
    let started = Instant::now();
    let workers = (0..args.concurrency)
        .map(|worker| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            let ids = ids.to_vec();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n: u64 = worker as u64 * 7919;
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = ids[(n >> 33) as usize % ids.len()];
                    let body = json!({ "query": query, "variables": {
                    "id": global_id("User", id), "tags": [format!("Tag {}", n % 50)] } });
                    let t = Instant::now();
                    post(&client, &endpoint, &key, body).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect::<Vec<_>>();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    Sample {
        name: "addTags on one user (HTTP)".into(),
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// One tag to every user through the write path, with a query target.
async fn bulk_write_path(conn: &DatabaseConnection, users: usize) -> Sample {
    let all = Query::select()
        .column("id")
        .from("users")
        .and_where(Expr::col("workspace_id").eq(1))
        .to_owned();
    let started = Instant::now();
    let txn = db::begin_write(conn).await.expect("txn");
    let outcome = apply_to_targets(
        &txn,
        1,
        &[(SubjectKind::User, Target::Select(Box::new(all)))],
        &[
            tagsmith::tags::name::TagName::parse("Bulk Everyone", Default::default())
                .expect("a valid name"),
        ],
        Op::Added,
        Actor {
            source: Source::Bulk,
            name: Some("bench"),
            cause: tagsmith::tags::Cause::None,
            depth: 0,
        },
        &tagsmith::time::Clock::system(),
    )
    .await
    .expect("bulk");
    txn.commit().await.expect("commit");
    let elapsed = started.elapsed();
    assert_eq!(outcome.changed as usize, users);
    Sample {
        name: format!("bulk add 1 tag to {users} users (write path, one transaction)"),
        count: 1,
        elapsed,
        latencies: vec![elapsed],
    }
}

/// One tag to every user through `bulkAddTags`, 10,000 ids per call.
async fn bulk_api(client: &reqwest::Client, endpoint: &str, key: &str, ids: &[i64]) -> Sample {
    let query = "mutation($ids: [ID!], $tags: [String!]!) { bulkAddTags(target: { ids: $ids }, tags: $tags) { matched changed } }";
    let started = Instant::now();
    let mut latencies = Vec::new();
    for chunk in ids.chunks(10_000) {
        let ids: Vec<String> = chunk.iter().map(|id| global_id("User", *id)).collect();
        let t = Instant::now();
        let body = post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": { "ids": ids, "tags": ["Bulk API"] } }),
        )
        .await;
        latencies.push(t.elapsed());
        assert_eq!(body["data"]["bulkAddTags"]["changed"], chunk.len());
    }
    Sample {
        name: format!(
            "bulkAddTags to {} users (HTTP, 10,000 ids per call)",
            ids.len()
        ),
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// `users(first: 50)` with tags and account, from C clients for S seconds.
async fn list_users(client: &reqwest::Client, endpoint: &str, key: &str, args: &Args) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let query = "{ users(first: 50) { nodes { id email tags { name } account { name } } } }";
    let started = Instant::now();
    let workers = (0..args.concurrency)
        .map(|_| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    post(&client, &endpoint, &key, json!({ "query": query })).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect::<Vec<_>>();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    Sample {
        name: "users(first: 50) with tags and account (HTTP)".into(),
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

const DESIGN_EXAMPLE: &str = r#"
fn on_tag_added(event) {
    let s = event.subject;
    if event.tag == "Webinar Attendee" && s.has_tag("Clicked Demo") {
        s.add_tag("Qualified Lead");
    } else {
        log(`no demo click for ${s.email}`);
    }
}
"#;

/// One run of the DESIGN example's hook on a snapshot, AST compiled once.
fn hook_run() -> Sample {
    use tagsmith::automation::script::{
        HookEvent, HookKind, ScriptEngine, SubjectKind, SubjectSnapshot,
    };
    let engine = ScriptEngine::new(Default::default());
    let compiled = engine.compile(DESIGN_EXAMPLE).expect("compiles");
    let mut subject = SubjectSnapshot::new(SubjectKind::User, "VXNlcjox");
    subject.email = Some("ana@example.com".into());
    subject.tags = vec!["Clicked Demo".into(), "Webinar Attendee".into()];
    let event = HookEvent {
        hook: HookKind::TagAdded,
        tag: Some("Webinar Attendee".into()),
        segment: None,
        source: "MANUAL".into(),
        depth: 0,
        subject,
    };
    for _ in 0..1000 {
        engine.run(&compiled, &event);
    }
    let runs = 20_000;
    let mut latencies = Vec::with_capacity(runs);
    let started = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let outcome = engine.run(&compiled, &event);
        latencies.push(t.elapsed());
        assert!(outcome.ok && outcome.actions.len() == 1);
    }
    Sample {
        name: "one hook run, cached AST (DESIGN example, in process)".into(),
        count: runs,
        elapsed: started.elapsed(),
        latencies,
    }
}

async fn upload_script(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    name: &str,
    source: &str,
) {
    let query = "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }";
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "input": { "name": name, "source": source } } }),
    )
    .await;
}

async fn set_enabled(client: &reqwest::Client, endpoint: &str, key: &str, enabled: bool) {
    let scripts = post(
        client,
        endpoint,
        key,
        json!({ "query": "{ scripts { id } }" }),
    )
    .await;
    for script in scripts["data"]["scripts"].as_array().into_iter().flatten() {
        let query =
            "mutation($id: ID!, $on: Boolean!) { setScriptEnabled(id: $id, enabled: $on) { id } }";
        post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": { "id": script["id"], "on": enabled } }),
        )
        .await;
    }
}

async fn wait_drained(conn: &DatabaseConnection) {
    let backend = conn.get_database_backend();
    loop {
        let row = conn
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) FROM automation_events WHERE status IN ('pending', 'running')",
            ))
            .await
            .expect("count")
            .expect("row");
        if row.try_get_by_index::<i64>(0).expect("count") == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// From the commit of an `addTags` (its change's time) to the script's
/// follow-up change, while other clients keep tagging.
async fn automation_latency(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    wait_drained(conn).await;
    set_enabled(client, endpoint, key, false).await;
    upload_script(
        client,
        endpoint,
        key,
        "latency",
        r#"fn on_tag_added(e) { if e.tag.starts_with("Probe ") { e.subject.add_tag(`Answer ${e.tag}`); } }"#,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    // Background load: other clients tagging random users.
    let load = (0..Ord::max(args.concurrency / 2, 1))
        .map(|worker| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            let ids = ids.to_vec();
            tokio::spawn(async move {
                let query = "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
                let mut n: u64 = 17 + worker as u64;
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let id = ids[(n >> 33) as usize % ids.len()];
                    post(&client, &endpoint, &key, json!({ "query": query, "variables": {
                        "id": global_id("User", id), "tags": [format!("Load {}", n % 20)] } })).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect::<Vec<_>>();
    // Probes: one every 10 ms.
    let query = "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
    let mut probes = 0usize;
    while Instant::now() < deadline {
        let id = ids[probes % ids.len()];
        post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": {
            "id": global_id("User", id), "tags": [format!("Probe {probes}")] } }),
        )
        .await;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut background = 0;
    for task in load {
        background += task.await.expect("load");
    }
    wait_drained(conn).await;
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT cause.at, answer.at FROM tag_changes answer JOIN tag_changes cause ON cause.id = answer.cause_id \
             WHERE answer.source = 'SCRIPT' AND answer.actor = 'latency'",
        ))
        .await
        .expect("latencies");
    let latencies: Vec<Duration> = rows
        .iter()
        .map(|row| {
            let cause: chrono::DateTime<chrono::Utc> = row.try_get_by_index(0).expect("at");
            let answer: chrono::DateTime<chrono::Utc> = row.try_get_by_index(1).expect("at");
            (answer - cause).to_std().unwrap_or_default()
        })
        .collect();
    assert_eq!(latencies.len(), probes, "every probe answered");
    set_enabled(client, endpoint, key, false).await;
    Sample {
        name: format!(
            "automation: addTags commit to script change committed ({background} other tag changes meanwhile)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    }
}

/// Events handled per second: a bulk add of one tag to 10,000 users with a
/// script listening (it plans nothing: each event is a claim, a snapshot, a
/// hook run and a commit).
async fn events_per_second(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
) -> Sample {
    wait_drained(conn).await;
    upload_script(
        client,
        endpoint,
        key,
        "listener",
        r#"fn on_tag_added(e) { if e.tag == "never" { e.subject.add_tag("x"); } }"#,
    )
    .await;
    let chunk: Vec<String> = ids
        .iter()
        .take(10_000)
        .map(|id| global_id("User", *id))
        .collect();
    let query = "mutation($ids: [ID!], $tags: [String!]!) { bulkAddTags(target: { ids: $ids }, tags: $tags) { changed } }";
    let started = Instant::now();
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "ids": chunk, "tags": ["Event Storm"] } }),
    )
    .await;
    wait_drained(conn).await;
    let elapsed = started.elapsed();
    set_enabled(client, endpoint, key, false).await;
    Sample {
        name: format!(
            "automation: {} events handled, one script listening",
            chunk.len()
        ),
        count: chunk.len(),
        elapsed,
        latencies: Vec::new(),
    }
}

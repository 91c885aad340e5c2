//! tagsmith's benchmark harness: a real server on this machine, real HTTP.
//!
//! ```sh
//! cargo bench --bench tagsmith -- [--users N] [--seconds S] [--concurrency C] [--postgres URL]
//!     [--postgraphile] [--scenarios NAME,NAME,...] [--runs R] [--growth N,N,...] [--svg FILE]
//!     [--import-rows M]
//! cargo test --release --bench tagsmith -- --quick [--postgres URL]   # or without --release
//! ```
//! Seeds N users (default 100,000) into a fresh database (a temp SQLite file,
//! or a new database on the PostgreSQL server of URL): N / 10 accounts, each
//! user in one, with three of 20 tags and `last_seen_at` spread over the last
//! 90 days; then measures the chosen scenarios (`--scenarios`, default
//! `all`; `segments` names the three segment ones; `--only` is a synonym):
//! - `compare`: the same reads and writes through tagsmith's GraphQL, a
//!   hand-written SQL baseline (sqlx, served as JSON by a minimal axum app,
//!   see `handwritten.rs`) and, with `--postgraphile` on PostgreSQL,
//!   PostGraphile (see `postgraphile.rs`), one after the other with the same
//!   load client: list 50 users with tags and account at 1 and 32 clients,
//!   a user by id, `addTags` of a new tag on one user, the count of one tag,
//!   `memberCount` of the 3-clause filter below; a table with the ratios;
//! - `add-tags`: `addTags` on one user through HTTP: mutations/s, p50, p99;
//! - `bulk-write`: bulk add of one tag to every seeded user through the one
//!   write path (the set-based statement a segment or filter target uses),
//!   and `bulk-api`: the same through the API as `bulkAddTags` calls of
//!   10,000 ids each;
//! - `list-users`: listing 50 users with tags and account through HTTP;
//! - `hook-run`, `automation-latency`, `automation-events`: automation: the
//!   cost of one hook run with a cached AST; from an `addTags` commit to the
//!   script's follow-up change, p50/p99, under a steady load of other tag
//!   changes; events handled per second;
//! - `webhook-latency`: from sending an `addTags` to the webhook request
//!   arriving at a receiver on 127.0.0.1, p50/p99, under the same load;
//!   then again with a dead endpoint (always 500) beside it (`webhooks.rs`);
//! - `segment-count`: `segment(id) { memberCount }` of a three-clause filter
//!   (`tagged("Plan: Pro") and last_seen_at > now - 30d and events("login",
//!   30d) >= 1`) through HTTP, R times (default 10, after one warm-up), beside
//!   the statement the server runs (the compiler's `select_ids` wrapped in
//!   `COUNT(*)`) and a hand-written equivalent, both run directly on the
//!   same connection; prints the ratio and both query plans;
//! - `segment-reevaluation`: `addTags` on one user through HTTP with no
//!   segments, then with 100 segments with entry actions (a change that
//!   enters none of them, and one that enters one);
//! - `segment-latency`: from an `addTags` commit to the tag a segment's entry
//!   action adds, p50/p99, under a steady load of other tag changes;
//! - `import`: a generated CSV of M rows (`--import-rows`, default
//!   1,000,000; the shape of `benches/generate_people.py`: email,
//!   first_name, last_name and 3 tag columns) imported by the real
//!   `tagsmith import users` binary as a child process (the one cargo builds
//!   beside the bench: wall time and its peak RSS), through `importUsers`
//!   over HTTP in chunks of 10,000 rows, and by a hand-written sqlx import
//!   (users, tags, assignments; no history or outbox rows), each into a
//!   fresh workspace, the automation worker stopped; rows/s against the
//!   50,000 rows/s target and the hand-written SQL (see `import.rs`).
//!
//! The segment scenarios first give 10% of the users "Plan: Pro" (the tag
//! through the write path, its assignments with one insert-select) and seed
//! `events`: a "login" for two users in three and a "page_view" for every
//! user, spread over 90 days.
//!
//! Prints Markdown tables for BENCHMARKS.md, then the notes (ratios, the
//! compiled SQL and the query plans).
//!
//! `--growth 10000,100000,1000000` runs the chosen scenarios at each size
//! (a fresh database each) and prints how the comparison's figures grow;
//! with `--svg FILE` it also draws them (`growth.rs`). `--quick` checks that
//! the harness works in well under two minutes (2,000 users, 1 s per timed
//! scenario, 2 runs, 5,000 import rows; for CI, never a verdict on speed).

use std::time::{Duration, Instant};

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::json;
use tagsmith::config::{DatabaseSettings, ServerSettings};
use tagsmith::subjects::SubjectKind;
use tagsmith::tagging::assign::{Actor, apply_to_targets};
use tagsmith::tags::write::Target;
use tagsmith::tags::{Op, Source};
use tagsmith::{db, server};

mod compare;
mod growth;
mod handwritten;
mod import;
mod postgraphile;
mod webhooks;

struct Args {
    users: usize,
    seconds: u64,
    concurrency: usize,
    postgres: Option<String>,
    /// The scenarios to run, by name (see [`SCENARIOS`]).
    scenarios: Vec<&'static str>,
    /// Timed runs of each count in `segment-count`.
    runs: usize,
    /// Start PostGraphile beside tagsmith (PostgreSQL only).
    postgraphile: bool,
    /// Run the scenarios at each of these sizes instead of `users`.
    growth: Vec<usize>,
    /// Where `--growth` draws its chart.
    svg: Option<String>,
    /// Rows of the CSV the `import` scenario generates.
    import_rows: usize,
}

/// Every scenario, in the order they run.
const SCENARIOS: &[&str] = &[
    "compare",
    "add-tags",
    "bulk-write",
    "bulk-api",
    "list-users",
    "hook-run",
    "automation-latency",
    "automation-events",
    "webhook-latency",
    "segment-count",
    "segment-reevaluation",
    "segment-latency",
    "segment-preview",
    "import",
];

/// `all`, `segments`, or a comma-separated list of names of [`SCENARIOS`].
fn scenarios(list: &str) -> Vec<&'static str> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => chosen.extend(SCENARIOS),
            "segments" => chosen.extend(SCENARIOS.iter().filter(|s| s.starts_with("segment-"))),
            _ => match SCENARIOS.iter().find(|s| **s == name) {
                Some(found) => chosen.push(*found),
                None => panic!(
                    "unknown scenario {name:?}: expected all, segments or one of {}",
                    SCENARIOS.join(", ")
                ),
            },
        }
    }
    // In the order of SCENARIOS, each once.
    SCENARIOS
        .iter()
        .copied()
        .filter(|s| chosen.contains(s))
        .collect()
}

fn args() -> Args {
    let mut args = Args {
        users: 100_000,
        seconds: 10,
        concurrency: 8,
        postgres: None,
        scenarios: SCENARIOS.to_vec(),
        runs: 10,
        postgraphile: false,
        growth: Vec::new(),
        svg: None,
        import_rows: 1_000_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--users" => args.users = value().parse().expect("--users N"),
            "--seconds" => args.seconds = value().parse().expect("--seconds S"),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency C"),
            "--postgres" => args.postgres = Some(value()),
            "--scenarios" | "--only" => args.scenarios = scenarios(&value()),
            "--runs" => args.runs = value().parse().expect("--runs R"),
            "--postgraphile" => args.postgraphile = true,
            "--growth" => {
                args.growth = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--growth N,N,..."))
                    .collect()
            }
            "--svg" => args.svg = Some(value()),
            "--import-rows" => args.import_rows = value().parse().expect("--import-rows M"),
            "--quick" => {
                args.users = 2_000;
                args.seconds = 1;
                args.runs = 2;
                args.concurrency = 4;
                args.import_rows = 5_000;
            }
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        args.users > 0 && args.runs > 0 && args.import_rows > 0,
        "--users, --runs and --import-rows must be positive"
    );
    assert!(
        !args.postgraphile || args.postgres.is_some(),
        "--postgraphile needs --postgres URL"
    );
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
    /// The latencies the load clients recorded, since `started`.
    async fn of_clients(
        name: &str,
        started: Instant,
        clients: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    ) -> Sample {
        let mut latencies = Vec::new();
        for client in clients {
            latencies.extend(client.await.expect("load client"));
        }
        Sample {
            name: name.into(),
            count: latencies.len(),
            elapsed: started.elapsed(),
            latencies,
        }
    }

    /// The latency at quantile `p` (nearest rank), if any was recorded.
    fn percentile(&mut self, p: f64) -> Option<Duration> {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.latencies
            .get(i.min(self.latencies.len().saturating_sub(1)))
            .copied()
    }

    fn row(&mut self) -> String {
        let mut pct = |p: f64| match self.percentile(p) {
            Some(latency) => format!("{:.2}", latency.as_secs_f64() * 1000.0),
            None => "-".to_owned(),
        };
        let (p50, p99) = (pct(0.5), pct(0.99));
        format!(
            "| {} | {} | {:.3} | {:.0} | {} | {} |",
            self.name,
            self.count,
            self.elapsed.as_secs_f64(),
            self.count as f64 / self.elapsed.as_secs_f64(),
            p50,
            p99
        )
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    if args.growth.is_empty() {
        run(&args, args.users).await.print();
        return;
    }
    let mut reports = Vec::new();
    for &users in &args.growth {
        let mut report = run(&args, users).await;
        report.print();
        reports.push(report);
    }
    println!("\n{}", growth::table(&mut reports));
    if let Some(path) = &args.svg {
        std::fs::write(path, growth::svg(&mut reports)).expect("write the chart");
        eprintln!("chart written to {path}");
    }
}

/// What one run at one size measured.
struct Report {
    label: &'static str,
    users: usize,
    concurrency: usize,
    seconds: u64,
    rows: Vec<Sample>,
    comparisons: Vec<compare::Comparison>,
    notes: Vec<String>,
}

impl Report {
    fn print(&mut self) {
        let (label, users) = (self.label, self.users);
        if !self.comparisons.is_empty() {
            println!(
                "\n{label}, {users} users, {} s per system and scenario: tagsmith beside hand-written SQL{}\n",
                self.seconds,
                if self.comparisons[0].samples.len() > 2 {
                    " and PostGraphile"
                } else {
                    ""
                }
            );
            println!("{}", compare::table(&mut self.comparisons));
        }
        if !self.rows.is_empty() {
            println!(
                "\n{label}, {users} users, concurrency {}, {} s per timed scenario\n",
                self.concurrency, self.seconds
            );
            println!("| scenario | operations | seconds | per second | p50 ms | p99 ms |");
            println!("| --- | ---: | ---: | ---: | ---: | ---: |");
            for row in &mut self.rows {
                println!("{}", row.row());
            }
        }
        for note in &self.notes {
            println!("\n{note}");
        }
    }
}

/// One run at `users` users: a fresh database, tagsmith serving it (and the
/// baselines when compared), the chosen scenarios.
async fn run(args: &Args, users: usize) -> Report {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (url, label) = match &args.postgres {
        Some(admin_url) => {
            let name = format!("tagsmith_bench_{}_{users}", std::process::id());
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
        database_url: url.clone(),
        db_max_connections: 16,
    };
    let conn = db::connect(&settings).await.expect("connect");
    db::migrate(&conn).await.expect("migrate");
    let key = server::bootstrap(&conn)
        .await
        .expect("bootstrap")
        .expect("fresh");
    // Webhooks may reach the benchmark's receivers on 127.0.0.1 only.
    let app = tagsmith::app::AppState::new(conn.clone(), Default::default()).with_webhooks(
        tagsmith::webhooks::dispatch::Settings {
            allow: std::sync::Arc::new(tagsmith::webhooks::target::AllowList::new(&[
                "127.0.0.1".to_owned()
            ])),
            ..Default::default()
        },
    );
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(app.worker(Default::default()).run(async move {
        let _ = worker_stopped.await;
    }));
    let dispatcher = tagsmith::webhooks::dispatch::Dispatcher::new(
        conn.clone(),
        std::sync::Arc::clone(&app.webhooks),
        std::sync::Arc::clone(&app.webhook_wake),
        std::sync::Arc::clone(&app.metrics),
    )
    .expect("webhook client");
    let dispatcher = tokio::spawn(dispatcher.run(std::future::pending()));
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let running = server::start(
        app,
        ServerSettings {
            bind: "127.0.0.1:0".into(),
            max_body_bytes: 4 << 20,
            ..ServerSettings::default()
        },
        async move {
            let _ = server_stopped.await;
        },
    )
    .await
    .expect("server");
    let endpoint = format!("http://{}/graphql", running.addr);
    let client = reqwest::Client::new();

    eprintln!("seeding {users} users on {label}...");
    let started = Instant::now();
    let ids = seed(&conn, users).await;
    eprintln!("seeded in {:.1}s", started.elapsed().as_secs_f64());
    let args = &Args {
        users,
        scenarios: args.scenarios.clone(),
        postgres: args.postgres.clone(),
        growth: Vec::new(),
        svg: None,
        ..*args
    };

    let wants = |name: &str| args.scenarios.contains(&name);
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut comparisons = Vec::new();
    if wants("compare") || args.scenarios.iter().any(|s| s.starts_with("segment-")) {
        eprintln!("seeding segment data (Plan: Pro, events)...");
        let started = Instant::now();
        seed_segment_data(&conn).await;
        eprintln!(
            "segment data seeded in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    if wants("compare") {
        let pg = match args.postgraphile {
            true => Some(postgraphile::start(&conn, &url).await),
            false => None,
        };
        let sql = handwritten::start(&url).await;
        let segment = create_segment(
            &client,
            &endpoint,
            &key.secret,
            "Compare count",
            COUNT_FILTER,
            &[],
        )
        .await;
        let setup = compare::Setup {
            client: &client,
            graphql: compare::System {
                name: compare::GRAPHQL,
                endpoint: endpoint.clone(),
                key: Some(key.secret.clone()),
            },
            sql,
            postgraphile: pg.as_ref().map(|pg| compare::System {
                name: compare::POSTGRAPHILE,
                endpoint: pg.endpoint.clone(),
                key: None,
            }),
            ids: &ids,
            seconds: args.seconds,
            concurrency: args.concurrency,
        };
        comparisons = compare::run(&setup, &segment).await;
        // Shown at once too: the other scenarios may take long.
        eprintln!("\n{}", compare::table(&mut comparisons));
        delete_segment(&client, &endpoint, &key.secret, &segment).await;
        drop(pg);
        wait_drained(&conn).await;
    }
    if wants("add-tags") {
        rows.push(add_tags(&client, &endpoint, &key.secret, &ids, args).await);
    }
    if wants("bulk-write") {
        rows.push(bulk_write_path(&conn, args.users).await);
    }
    if wants("bulk-api") {
        rows.push(bulk_api(&client, &endpoint, &key.secret, &ids).await);
    }
    if wants("list-users") {
        rows.push(list_users(&client, &endpoint, &key.secret, args).await);
    }
    if wants("hook-run") {
        rows.push(hook_run());
        rows.push(hook_runs_batched());
    }
    if wants("automation-latency") {
        rows.push(automation_latency(&conn, &client, &endpoint, &key.secret, &ids, args).await);
    }
    if wants("automation-events") {
        rows.push(events_per_second(&conn, &client, &endpoint, &key.secret, &ids).await);
    }
    if wants("webhook-latency") {
        rows.extend(
            webhooks::webhook_latency(&conn, &client, &endpoint, &key.secret, &ids, args).await,
        );
    }
    if wants("segment-count") {
        let (samples, found) = segment_count(&conn, &client, &endpoint, &key.secret, args).await;
        rows.extend(samples);
        notes.extend(found);
    }
    if wants("segment-reevaluation") {
        let (samples, found) =
            segment_reevaluation(&conn, &client, &endpoint, &key.secret, &ids, args).await;
        rows.extend(samples);
        notes.extend(found);
    }
    if wants("segment-latency") {
        rows.push(segment_latency(&conn, &client, &endpoint, &key.secret, &ids, args).await);
    }
    if wants("segment-preview") {
        rows.extend(segment_preview(&conn, &client, &endpoint, &key.secret, args).await);
    }
    let mut worker = Some((stop_worker, worker));
    if wants("import") {
        // The last scenario: each system imports with the worker stopped,
        // leaving the outbox events of its tags pending (see import.rs).
        wait_drained(&conn).await;
        if let Some((stop, worker)) = worker.take() {
            let _ = stop.send(());
            let _ = worker.await;
        }
        notes.push(import::run(&conn, &url, &client, &endpoint, args.import_rows).await);
    }

    let _ = stop_server.send(());
    dispatcher.abort();
    if let Some((stop, worker)) = worker.take() {
        let _ = stop.send(());
        let _ = worker.await;
    }
    Report {
        label,
        users,
        concurrency: args.concurrency,
        seconds: args.seconds,
        rows,
        comparisons,
        notes,
    }
}

/// `ANALYZE` of the tables the harness seeds, on PostgreSQL. Not the
/// outbox: its statistics are left to autovacuum and the worker, as in
/// production. (With or without statistics taken while it was empty, the
/// worker's claim stalled for minutes once `bulk-write` queued 100,000
/// events, on 2026-11-27; see BENCHMARKS.md, finding 1.)
const SEEDED_TABLES: &str = "ANALYZE users, accounts, tags, tag_assignments, events";

/// How many seeded tags there are (`Seed 0` to `Seed 19`); every user has
/// three of them.
const SEED_TAGS: i64 = 20;

/// Inserts `n / 10` accounts (at least one; `Account I`), then `n` users
/// (`userI@example.com`, the account `I % accounts`, `last_seen_at` spread
/// over the last 90 days) with set-based insert-selects of 100,000 rows
/// each, then gives each user three of [`SEED_TAGS`] tags (`Seed (id + k)
/// % 20` for k = 0, 7, 13) with insert-selects (assignments only: no
/// history or outbox rows, as an import of existing data would leave them);
/// returns the users' ids.
async fn seed(conn: &DatabaseConnection, n: usize) -> Vec<i64> {
    let now = chrono::Utc::now();
    let backend = conn.get_database_backend();
    let accounts = (n / 10).max(1) as i64;
    let series = |from: &str, to: &str| match backend {
        DbBackend::Postgres => format!("generate_series({from}::bigint, {to}::bigint) AS n(i)"),
        _ => format!(
            "(WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) SELECT i FROM n) AS n"
        ),
    };
    // Numbered placeholders: SQLite (through sqlx) reads `$N` too.
    let p = |i: usize| format!("${i}");
    let stamp = match backend {
        DbBackend::Postgres => sea_orm::Value::from(now),
        _ => sea_orm::Value::from(sqlite_instant(now)),
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO accounts (workspace_id, external_id, name, attributes, created_at, updated_at) \
             SELECT 1, 'acct' || i, 'Account ' || i, '{{}}', {now}, {now} FROM {series} ORDER BY i",
            now = p(1),
            series = series("1", &accounts.to_string()),
        ),
        [now.into()],
    ))
    .await
    .expect("seed accounts");
    let first_account = count_rows(conn, "SELECT MIN(id) FROM accounts").await;
    for start in (0..n).step_by(100_000) {
        let end = (start + 100_000).min(n);
        let last_seen = match backend {
            DbBackend::Postgres => {
                format!(
                    "{}::timestamptz - ((i * 7919) % 7776000) * interval '1 second'",
                    p(1)
                )
            }
            _ => format!(
                "strftime('%Y-%m-%dT%H:%M:%f+00:00', {}, '-' || ((i * 7919) % 7776000) || ' seconds')",
                p(1)
            ),
        };
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO users (workspace_id, email, account_id, attributes, last_seen_at, created_at, updated_at) \
                 SELECT 1, 'user' || i || '@example.com', {first_account} + i % {accounts}, '{{}}', {last_seen}, {now}, {now} \
                 FROM {series} ORDER BY i",
                now = p(2),
                series = series(&start.to_string(), &(end - 1).to_string()),
            ),
            [stamp.clone(), now.into()],
        );
        conn.execute_raw(statement).await.expect("seed");
    }
    let values = (0..SEED_TAGS)
        .map(|i| format!("(1, 'Seed {i}', {})", p(1)))
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("INSERT INTO tags (workspace_id, name, created_at) VALUES {values}"),
        [now.into()],
    ))
    .await
    .expect("seed tags");
    let first_tag = count_rows(conn, "SELECT MIN(id) FROM tags WHERE name = 'Seed 0'").await;
    for k in [0, 7, 13] {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO tag_assignments (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
                 SELECT 1, {first_tag} + (id + {k}) % {SEED_TAGS}, 'USER', id, 'IMPORT', 'bench seed', {} \
                 FROM users WHERE workspace_id = 1",
                p(1)
            ),
            [now.into()],
        ))
        .await
        .expect("seed tag assignments");
    }
    if backend == DbBackend::Postgres {
        conn.execute_unprepared(SEEDED_TABLES)
            .await
            .expect("analyze");
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM users ORDER BY id",
        ))
        .await
        .expect("ids");
    rows.into_iter()
        .map(|row| row.try_get_by_index::<i64>(0).expect("id"))
        .collect()
}

/// An instant as SQLite's date functions read it (UTC, whole seconds).
fn sqlite_instant(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// What the segment scenarios filter on: "Plan: Pro" on every tenth user, a
/// "login" event for two users in three and a "page_view" for every user,
/// spread over the last 90 days. The tag is created through the write path
/// on one user and given to the others with one insert-select (no history
/// or outbox rows: on PostgreSQL, 100,000 outbox rows arriving at once
/// after the worker polled an empty outbox make its claim crawl, see
/// BENCHMARKS.md).
async fn seed_segment_data(conn: &DatabaseConnection) {
    let backend = conn.get_database_backend();
    let first = 10i64;
    let txn = db::begin_write(conn).await.expect("txn");
    apply_to_targets(
        &txn,
        1,
        &[(SubjectKind::User, Target::Ids(vec![first]))],
        &[tagsmith::tags::name::TagName::parse("Plan: Pro", Default::default()).expect("a name")],
        Op::Added,
        Actor {
            source: Source::Bulk,
            name: Some("bench seed"),
            cause: tagsmith::tags::Cause::None,
            depth: 0,
        },
        &tagsmith::time::Clock::system(),
    )
    .await
    .expect("Plan: Pro");
    txn.commit().await.expect("commit");
    let tag: i64 = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT id FROM tags WHERE workspace_id = 1 AND name = 'Plan: Pro' AND deleted_at IS NULL",
        ))
        .await
        .expect("tag")
        .expect("the tag")
        .try_get_by_index(0)
        .expect("id");
    let placeholders = match backend {
        DbBackend::Postgres => ["$1", "$2", "$3"],
        _ => ["?", "?", "?"],
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO tag_assignments (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
             SELECT 1, {}, 'USER', id, 'BULK', 'bench seed', {} FROM users \
             WHERE workspace_id = 1 AND id % 10 = 0 AND id <> {}",
            placeholders[0], placeholders[1], placeholders[2]
        ),
        [tag.into(), chrono::Utc::now().into(), first.into()],
    ))
    .await
    .expect("Plan: Pro assignments");
    let now = chrono::Utc::now();
    for (name, multiplier, which) in [
        ("login", 104_729, "id % 3 <> 0"),
        ("page_view", 15_485_863, "1 = 1"),
    ] {
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO events (workspace_id, subject_kind, subject_id, name, at, properties) \
                     SELECT 1, 'USER', id, $1, $2::timestamptz - ((id * {multiplier}) % 7776000) * interval '1 second', '{{}}' \
                     FROM users WHERE workspace_id = 1 AND {which}"
                ),
                [name.into(), now.into()],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO events (workspace_id, subject_kind, subject_id, name, at, properties) \
                     SELECT 1, 'USER', id, ?, strftime('%Y-%m-%dT%H:%M:%f+00:00', ?, '-' || ((id * {multiplier}) % 7776000) || ' seconds'), '{{}}' \
                     FROM users WHERE workspace_id = 1 AND {which}"
                ),
                [name.into(), sqlite_instant(now).into()],
            ),
        };
        conn.execute_raw(statement).await.expect("events");
    }
    if backend == DbBackend::Postgres {
        // What autovacuum does soon after a bulk load; SQLite is left as the
        // server leaves it (no ANALYZE).
        conn.execute_unprepared(SEEDED_TABLES)
            .await
            .expect("analyze");
    }
    wait_drained(conn).await;
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
    add_tags_named(client, endpoint, key, ids, args, "Tag", 0).await
}

/// `addTags` of one of 50 tags (`{prefix} 0` to `{prefix} 49`) on a random
/// user, from C clients for S seconds. Runs with different `seed`s tag
/// different users (one with the same seed repeats the same no-op changes).
async fn add_tags_named(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
    prefix: &str,
    seed: u64,
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
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n: u64 =
                    (worker as u64 * 7919).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = ids[(n >> 33) as usize % ids.len()];
                    let body = json!({ "query": query, "variables": {
                    "id": global_id("User", id), "tags": [format!("{prefix} {}", n % 50)] } });
                    let t = Instant::now();
                    post(&client, &endpoint, &key, body).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect::<Vec<_>>();
    Sample::of_clients("addTags on one user (HTTP)", started, workers).await
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
    Sample::of_clients(
        "users(first: 50) with tags and account (HTTP)",
        started,
        workers,
    )
    .await
}

const DESIGN_EXAMPLE: &str = include_str!("../../scripts/design_example.rhai");

/// The DESIGN example compiled once, and the event its hook runs on: "Webinar
/// Attendee" added to a user who has "Clicked Demo" (one action planned).
fn design_example_hook() -> (
    tagsmith::automation::script::ScriptEngine,
    tagsmith::automation::script::CompiledScript,
    tagsmith::automation::script::HookEvent,
) {
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
    (engine, compiled, event)
}

/// Hook runs as the worker makes them: a batch of 64 handed to the script
/// threads at once (`run_many`); the latency of each is the batch's time / 64.
fn hook_runs_batched() -> Sample {
    const BATCH: usize = 64;
    let (engine, compiled, event) = design_example_hook();
    let batch = || vec![(compiled.clone(), event.clone()); BATCH];
    for _ in 0..20 {
        engine.run_many(batch());
    }
    let batches = 400;
    let mut latencies = Vec::with_capacity(batches * BATCH);
    let started = Instant::now();
    for _ in 0..batches {
        let runs = batch();
        let t = Instant::now();
        let outcomes = engine.run_many(runs);
        let each = t.elapsed() / BATCH as u32;
        assert!(outcomes.iter().all(|o| o.ok && o.actions.len() == 1));
        latencies.extend(std::iter::repeat_n(each, BATCH));
    }
    Sample {
        name: format!("one hook run in a worker batch of {BATCH} (run_many, in process)"),
        count: batches * BATCH,
        elapsed: started.elapsed(),
        latencies,
    }
}

/// One run of the DESIGN example's hook on a snapshot, AST compiled once.
fn hook_run() -> Sample {
    let (engine, compiled, event) = design_example_hook();
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

/// The filter of `segment-count`: three clauses, one per kind of data.
const COUNT_FILTER: &str =
    r#"tagged("Plan: Pro") and last_seen_at > now - 30d and events("login", 30d) >= 1"#;

/// What a person would write for [`COUNT_FILTER`], evaluated at `now`.
fn hand_written_count(backend: DbBackend, now: chrono::DateTime<chrono::Utc>) -> Statement {
    let since = now - chrono::TimeDelta::days(30);
    let sql = "SELECT COUNT(*) FROM users u \
               WHERE u.workspace_id = 1 \
               AND EXISTS (SELECT 1 FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id \
                           WHERE ta.subject_kind = 'USER' AND ta.subject_id = u.id \
                           AND t.workspace_id = 1 AND t.deleted_at IS NULL AND t.name = 'Plan: Pro') \
               AND u.last_seen_at > ? \
               AND EXISTS (SELECT 1 FROM events e \
                           WHERE e.subject_kind = 'USER' AND e.subject_id = u.id \
                           AND e.name = 'login' AND e.at >= ?)";
    let sql = match backend {
        DbBackend::Postgres => sql.replacen('?', "$1", 1).replacen('?', "$2", 1),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, [since.into(), since.into()])
}

/// The statement the server runs for `memberCount` of [`COUNT_FILTER`]
/// (`segments::store::count` around the compiler's `select_ids`).
fn compiled_count(backend: DbBackend, select: sea_orm::sea_query::SelectStatement) -> Statement {
    let query = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from_subquery(select, sea_orm::sea_query::Alias::new("m"))
        .to_owned();
    backend.build(&query)
}

/// The query plan of a statement: SQLite's `EXPLAIN QUERY PLAN` as a tree,
/// PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)`.
async fn explain(conn: &DatabaseConnection, statement: &Statement) -> String {
    let backend = conn.get_database_backend();
    let prefix = match backend {
        DbBackend::Postgres => "EXPLAIN (ANALYZE, BUFFERS) ",
        _ => "EXPLAIN QUERY PLAN ",
    };
    let explained = Statement {
        sql: format!("{prefix}{}", statement.sql),
        ..statement.clone()
    };
    let rows = conn.query_all_raw(explained).await.expect("explain");
    let mut lines = Vec::new();
    match backend {
        DbBackend::Postgres => {
            for row in rows {
                lines.push(row.try_get_by_index::<String>(0).expect("plan line"));
            }
        }
        _ => {
            // (id, parent, notused, detail): indent by depth.
            let mut depth: std::collections::HashMap<i64, usize> = Default::default();
            for row in rows {
                let id: i64 = row.try_get_by_index(0).expect("id");
                let parent: i64 = row.try_get_by_index(1).expect("parent");
                let detail: String = row.try_get_by_index(3).expect("detail");
                let level = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, level);
                lines.push(format!("{}{detail}", "  ".repeat(level)));
            }
        }
    }
    lines.join("\n")
}

/// The statement's SQL with its values listed after it.
fn shown(statement: &Statement) -> String {
    let values = statement
        .values
        .as_ref()
        .map(|v| {
            v.0.iter()
                .map(|value| format!("{value:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!("{}\n-- values: {values}", statement.sql)
}

/// `previewSegment` of [`COUNT_FILTER`] and `previewSegmentChange` of a
/// segment with that filter to another (`tagged("Seed 3")`, a third of the
/// users), through HTTP, `args.runs` times each (after one warm-up).
async fn segment_preview(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    args: &Args,
) -> Vec<Sample> {
    wait_drained(conn).await;
    let id = create_segment(client, endpoint, key, "Preview me", COUNT_FILTER, &[]).await;
    let preview = json!({
        "query": "query($f: String!) { previewSegment(subjectKind: USER, filter: $f) { count } }",
        "variables": { "f": COUNT_FILTER },
    });
    let change = json!({
        "query": "query($id: ID!, $f: String!) { previewSegmentChange(id: $id, filter: $f) {
            entering exiting staying enteringSample { __typename } } }",
        "variables": { "id": id, "f": "tagged(\"Seed 3\")" },
    });
    let mut rows = Vec::new();
    for (name, body) in [
        ("previewSegment of a 3-clause filter", preview),
        ("previewSegmentChange to tagged(\"Seed 3\")", change),
    ] {
        let mut latencies = Vec::new();
        let mut answer = serde_json::Value::Null;
        for run in 0..=args.runs {
            let t = Instant::now();
            answer = post(client, endpoint, key, body.clone()).await;
            if run > 0 {
                latencies.push(t.elapsed());
            }
        }
        assert!(answer.get("errors").is_none(), "{answer}");
        let data = &answer["data"];
        let found = match data.get("previewSegment") {
            Some(preview) => format!("{} match", preview["count"]),
            None => {
                let change = &data["previewSegmentChange"];
                format!(
                    "{} enter, {} leave, {} stay",
                    change["entering"], change["exiting"], change["staying"]
                )
            }
        };
        rows.push(Sample {
            name: format!("segments: {name} over {} users (HTTP): {found}", args.users),
            count: latencies.len(),
            elapsed: latencies.iter().sum(),
            latencies,
        });
    }
    delete_segment(client, endpoint, key, &id).await;
    rows
}

async fn create_segment(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    name: &str,
    filter: &str,
    on_entry: &[String],
) -> serde_json::Value {
    let query = "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }";
    let input = json!({
        "name": name,
        "subjectKind": "USER",
        "filter": filter,
        "onEntry": { "add": on_entry },
    });
    let body = post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "input": input } }),
    )
    .await;
    body["data"]["createSegment"]["id"].clone()
}

async fn delete_segment(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    id: &serde_json::Value,
) {
    let query = "mutation($id: ID!) { deleteSegment(id: $id) }";
    post(
        client,
        endpoint,
        key,
        json!({ "query": query, "variables": { "id": id } }),
    )
    .await;
}

/// `memberCount` of [`COUNT_FILTER`] through HTTP, the same statement run
/// directly, and a hand-written count, `args.runs` times each after one
/// warm-up, interleaved in rotating order; notes the ratios, the SQL and the
/// plans.
async fn segment_count(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    args: &Args,
) -> (Vec<Sample>, Vec<String>) {
    use tagsmith::segments::filter::{Filter, SubjectKind as FilterKind};
    use tagsmith::segments::membership::{Segments, members_query};
    use tagsmith::segments::store;

    wait_drained(conn).await;
    let backend = conn.get_database_backend();
    let id = create_segment(client, endpoint, key, "Active Pro", COUNT_FILTER, &[]).await;
    let filter = Filter::parse(COUNT_FILTER, FilterKind::User).expect("the filter parses");
    let segments = Segments::load(conn, 1).await.expect("segments");
    let query = "query($id: ID!) { segment(id: $id) { memberCount } }";
    let mut graphql = Vec::new();
    let mut compiled = Vec::new();
    let mut hand = Vec::new();
    let mut found = (0, 0, 0);
    let started = Instant::now();
    for run in 0..=args.runs {
        // Each goes first, second and third in turn: the one after the
        // hand-written scan finds a colder cache.
        let mut via_api = 0;
        let mut direct = 0;
        let mut by_hand = 0;
        let (mut through_http, mut compiled_time, mut hand_time) = Default::default();
        let now = chrono::Utc::now();
        for step in 0..3 {
            let t = Instant::now();
            match (run + step) % 3 {
                0 => {
                    let body = post(
                        client,
                        endpoint,
                        key,
                        json!({ "query": query, "variables": { "id": id } }),
                    )
                    .await;
                    via_api = body["data"]["segment"]["memberCount"]
                        .as_i64()
                        .expect("memberCount");
                    through_http = t.elapsed();
                }
                1 => {
                    let select = members_query(backend, 1, &filter, &segments, now);
                    direct = store::count(conn, select).await.expect("count") as i64;
                    compiled_time = t.elapsed();
                }
                _ => {
                    by_hand = conn
                        .query_one_raw(hand_written_count(backend, now))
                        .await
                        .expect("hand-written count")
                        .expect("a row")
                        .try_get_by_index(0)
                        .expect("count");
                    hand_time = t.elapsed();
                }
            }
        }
        assert_eq!(
            direct, by_hand,
            "the compiled and hand-written counts agree"
        );
        // The API evaluates at its own clock's now, a little later: a user
        // may have crossed the 30-day edge meanwhile.
        assert!((via_api - by_hand).abs() <= 2, "{via_api} vs {by_hand}");
        found = (via_api, direct, by_hand);
        if run > 0 {
            graphql.push(through_http);
            compiled.push(compiled_time);
            hand.push(hand_time);
        }
    }
    let elapsed = started.elapsed();
    let sample = |name: String, latencies: Vec<Duration>| Sample {
        name,
        count: latencies.len(),
        elapsed: latencies.iter().sum(),
        latencies,
    };
    let users = args.users;
    let mut rows = vec![
        sample(
            format!(
                "segments: memberCount of a 3-clause filter over {users} users (HTTP), {} members",
                found.0
            ),
            graphql,
        ),
        sample(
            "segments: the server's count statement, run directly".into(),
            compiled,
        ),
        sample(
            "segments: hand-written COUNT(*) with EXISTS, run directly".into(),
            hand,
        ),
    ];
    let p50 = |s: &mut Sample| s.percentile(0.5).expect("runs").as_secs_f64();
    let hand_p50 = p50(&mut rows[2]);
    let mut notes = vec![format!(
        "segment-count: {} runs of each in {:.1} s. p50 ratios to the hand-written count: \
         memberCount through HTTP {:.2}x, the server's statement run directly {:.2}x.",
        args.runs,
        elapsed.as_secs_f64(),
        p50(&mut rows[0]) / hand_p50,
        p50(&mut rows[1]) / hand_p50,
    )];
    let now = chrono::Utc::now();
    let ours = compiled_count(backend, members_query(backend, 1, &filter, &segments, now));
    let theirs = hand_written_count(backend, now);
    notes.push(format!(
        "segment-count, the server's statement:\n```sql\n{}\n```\nplan:\n```\n{}\n```",
        shown(&ours),
        explain(conn, &ours).await
    ));
    notes.push(format!(
        "segment-count, the hand-written statement:\n```sql\n{}\n```\nplan:\n```\n{}\n```",
        shown(&theirs),
        explain(conn, &theirs).await
    ));
    delete_segment(client, endpoint, key, &id).await;
    (rows, notes)
}

/// Small filters for the 100 triggered segments, each entered by adding
/// `Tag {n}` (the tags `add_tags` uses are `Tag 0` to `Tag 49`).
fn trigger_filter(n: usize) -> String {
    match n % 4 {
        0 => format!(r#"tagged("Tag {n}") or attr.score >= {n}"#),
        1 => format!(r#"tagged("Tag {n}") and email contains "@example.com""#),
        2 => format!(r#"tagged_any("Tag {n}", "Beta {n}") and not tagged("Churned")"#),
        _ => format!(r#"tagged("Tag {n}") or (attr.plan = "gold" and attr.seats > {n})"#),
    }
}

async fn count_rows(conn: &DatabaseConnection, sql: &str) -> i64 {
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .expect("count")
        .expect("row")
        .try_get_by_index(0)
        .expect("count")
}

/// `addTags` through HTTP without segments, then with 100 segments with
/// entry actions: changes that enter none, and changes that enter one (whose
/// entry action the worker applies meanwhile).
async fn segment_reevaluation(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> (Vec<Sample>, Vec<String>) {
    wait_drained(conn).await;
    let mut baseline = add_tags_named(client, endpoint, key, ids, args, "Tag", 1).await;
    baseline.name = "segments: addTags on one user, no segments (HTTP)".into();
    wait_drained(conn).await;

    let started = Instant::now();
    let mut segment_ids = Vec::new();
    for n in 0..100 {
        let name = format!("Trigger {n}");
        let id = create_segment(
            client,
            endpoint,
            key,
            &name,
            &trigger_filter(n),
            &[format!("Seg {n}")],
        )
        .await;
        segment_ids.push(id);
    }
    let created = started.elapsed();
    wait_drained(conn).await;

    let mut quiet = add_tags_named(client, endpoint, key, ids, args, "Other", 2).await;
    quiet.name =
        "segments: addTags on one user, 100 triggered segments, entering none (HTTP)".into();
    let entries_before = count_rows(conn, "SELECT COUNT(*) FROM segment_changes").await;
    assert_eq!(entries_before, 0, "no entries while adding Other tags");
    wait_drained(conn).await;

    let mut entering = add_tags_named(client, endpoint, key, ids, args, "Tag", 3).await;
    let entries = count_rows(
        conn,
        "SELECT COUNT(*) FROM segment_changes WHERE op = 'ENTERED'",
    )
    .await;
    let drained = Instant::now();
    wait_drained(conn).await;
    let drain = drained.elapsed();
    let actions = count_rows(
        conn,
        "SELECT COUNT(*) FROM tag_changes WHERE source = 'TRIGGER'",
    )
    .await;
    entering.name = format!(
        "segments: addTags on one user, 100 triggered segments, entering one ({entries} entries) (HTTP)"
    );

    for id in &segment_ids {
        delete_segment(client, endpoint, key, id).await;
    }
    wait_drained(conn).await;
    let rate = |s: &Sample| s.count as f64 / s.elapsed.as_secs_f64();
    let notes = vec![format!(
        "segment-reevaluation: 100 segments created in {:.1} s; addTags/s with 100 triggered \
         segments vs none: {:.2}x (entering none), {:.2}x (entering one); {actions} entry \
         actions applied, the worker's backlog drained {:.1} s after the timed run.",
        created.as_secs_f64(),
        rate(&quiet) / rate(&baseline),
        rate(&entering) / rate(&baseline),
        drain.as_secs_f64(),
    )];
    (vec![baseline, quiet, entering], notes)
}

/// From the commit of an `addTags` of "Go" to the commit of the tag the
/// segment `tagged("Go")` adds on entry, while other clients keep tagging:
/// the trigger's change (source TRIGGER) names the entry, which names the
/// MANUAL change; their `at` are the two write times.
async fn segment_latency(
    conn: &DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    wait_drained(conn).await;
    let segment = create_segment(
        client,
        endpoint,
        key,
        "Go latency",
        r#"tagged("Go")"#,
        &["Went".to_owned()],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let query = "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
    // Background load: other clients tagging random users.
    let load = (0..Ord::max(args.concurrency / 2, 1))
        .map(|worker| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            let ids = ids.to_vec();
            tokio::spawn(async move {
                let mut n: u64 = 31 + worker as u64;
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = ids[(n >> 33) as usize % ids.len()];
                    let body = json!({ "query": query, "variables": {
                        "id": global_id("User", id), "tags": [format!("Load {}", n % 20)] } });
                    post(&client, &endpoint, &key, body).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect::<Vec<_>>();
    // Probes: "Go" on a new user every 10 ms.
    let mut probes = 0usize;
    while Instant::now() < deadline {
        let id = ids[probes % ids.len()];
        let body = json!({ "query": query, "variables": {
            "id": global_id("User", id), "tags": ["Go"] } });
        post(client, endpoint, key, body).await;
        probes += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut background = 0;
    for task in load {
        background += task.await.expect("load");
    }
    wait_drained(conn).await;
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT cause.at, answer.at FROM tag_changes answer \
             JOIN segment_changes entry ON entry.id = answer.cause_segment_change_id \
             JOIN tag_changes cause ON cause.id = entry.cause_id \
             WHERE answer.source = 'TRIGGER' AND answer.actor = 'Go latency' \
             AND cause.source = 'MANUAL'",
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
    assert_eq!(
        latencies.len(),
        probes.min(ids.len()),
        "every probe answered"
    );
    delete_segment(client, endpoint, key, &segment).await;
    wait_drained(conn).await;
    Sample {
        name: format!(
            "segments: addTags commit to entry action committed ({background} other tag changes meanwhile)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    }
}

//! tagsmith's benchmark harness: a real server on this machine, real HTTP.
//!
//! ```sh
//! cargo bench --bench tagsmith -- [--users N] [--seconds S] [--concurrency C] [--postgres URL]
//!     [--postgraphile | --node-sqlite] [--scenarios NAME,NAME,...] [--runs R] [--growth N,N,...] [--svg FILE]
//!     [--import-rows M] [--api-key-cache-ms MS]
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
//!   PostGraphile (see `postgraphile.rs`), with `--node-sqlite` on SQLite
//!   or `--node-pg` on PostgreSQL a hand-written Node reader of the list
//!   and the user by id (see `nodereader.rs`), one after the other with
//!   the same load client: list 50 users with tags and account at 1 and 32
//!   clients,
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
//!   changes (`--load-rate`, default 600 `addTags`/s from the clients of
//!   another process, paced; 0: half the clients in this process, as fast
//!   as they are answered); events handled per second;
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

use std::time::Instant;

use sea_orm::{ConnectionTrait, Database};
use tagsmith::config::{DatabaseSettings, ServerSettings};

/// The allocator the `tagsmith` binary uses (src/main.rs), so the server
/// measured in this process allocates as the served one does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tagsmith::{db, server};

mod automation;
mod client;
mod compare;
mod growth;
mod handwritten;
mod import;
mod nodereader;
mod postgraphile;
mod seed;
mod segments;
mod webhooks;
mod writes;

use automation::{
    automation_latency, events_per_second, hook_run, hook_runs_batched, wait_drained,
};
use client::Sample;
use seed::{seed, seed_segment_data};
use segments::{
    COUNT_FILTER, create_segment, delete_segment, segment_count, segment_latency, segment_preview,
    segment_reevaluation,
};
use writes::{add_tags, bulk_api, bulk_write_path, list_users};

/// The settings of a run.
struct Args {
    users: usize,
    seconds: u64,
    concurrency: usize,
    postgres: Option<String>,
    /// The scenarios to run, by name (see [`SCENARIOS`]).
    scenarios: Vec<&'static str>,
    /// Timed runs of each count in `segment-count`.
    runs: usize,
    /// Start PostGraphile 4 and 5 beside tagsmith (PostgreSQL only).
    postgraphile: bool,
    /// Start the `node:sqlite` reader beside tagsmith (SQLite only).
    node_sqlite: bool,
    /// Start the node + pg reader beside tagsmith (PostgreSQL only).
    node_pg: bool,
    /// Turns of `compare`'s load from a process of its own.
    turns: u64,
    /// Run the scenarios at each of these sizes instead of `users`.
    growth: Vec<usize>,
    /// Where `--growth` draws its chart.
    svg: Option<String>,
    /// Rows of the CSV the `import` scenario generates.
    import_rows: usize,
    /// The server's `--api-key-cache-ms`.
    api_key_cache_ms: u64,
    /// Tag changes per second of the latency scenarios' background load,
    /// from a process of its own (0: half the clients in this process, as
    /// fast as answered).
    load_rate: u64,
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
fn scenarios(list: &str) -> Result<Vec<&'static str>, String> {
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "all" => chosen.extend(SCENARIOS),
            "segments" => chosen.extend(SCENARIOS.iter().filter(|s| s.starts_with("segment-"))),
            _ => match SCENARIOS.iter().find(|s| **s == name) {
                Some(found) => chosen.push(*found),
                None => {
                    return Err(format!(
                        "unknown scenario {name:?}: expected all, segments or one of {}",
                        SCENARIOS.join(", ")
                    ));
                }
            },
        }
    }
    // In the order of SCENARIOS, each once.
    Ok(SCENARIOS
        .iter()
        .copied()
        .filter(|s| chosen.contains(s))
        .collect())
}

/// The command line (see the module documentation; `--quick` sets the
/// sizes not given to its small ones).
#[derive(Debug, clap::Parser)]
#[command(name = "tagsmith-bench", about = "tagsmith's benchmark harness")]
struct Cli {
    /// Users seeded (default 100,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    users: Option<u64>,
    /// Seconds per timed scenario and system (default 10).
    #[arg(long)]
    seconds: Option<u64>,
    /// Load clients at once (default 8).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: Option<u64>,
    /// Run on a new database of this PostgreSQL server instead of a temp SQLite file.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// `all`, `segments`, or a comma-separated list of scenario names.
    #[arg(long, visible_alias = "only", value_name = "NAME,NAME,...")]
    scenarios: Option<String>,
    /// Timed runs of each count in `segment-count` (default 10).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    runs: Option<u64>,
    /// Start PostGraphile 4 and 5 beside tagsmith (needs --postgres; see
    /// `postgraphile.rs` for their install).
    #[arg(long, requires = "postgres")]
    postgraphile: bool,
    /// Start the `node:sqlite` reader beside tagsmith on SQLite (Node 22,
    /// as PostGraphile 5; see `nodereader.rs`).
    #[arg(long, conflicts_with = "postgres")]
    node_sqlite: bool,
    /// Start the node + pg reader beside tagsmith on PostgreSQL (Node 22
    /// and the `pg` driver PostGraphile 4 installs; see `nodereader.rs`).
    #[arg(long, requires = "postgres")]
    node_pg: bool,
    /// `compare`'s list and user by id with the load from a process of its
    /// own give each system its --seconds in this many turns, round robin,
    /// so that a machine whose speed drifts slows every system alike (1:
    /// one after the other, as before 2026-12-07 21:00).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    turns: u64,
    /// Run the scenarios at each of these sizes instead of --users.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    growth: Vec<usize>,
    /// Where --growth draws its chart.
    #[arg(long, value_name = "FILE")]
    svg: Option<String>,
    /// Rows of the CSV the `import` scenario generates (default 1,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    import_rows: Option<u64>,
    /// The server's `--api-key-cache-ms` (0: the key read on every request,
    /// as before the cache).
    #[arg(long, default_value_t = 1_000)]
    api_key_cache_ms: u64,
    /// The latency scenarios' background load: this many `addTags` per
    /// second from --concurrency clients in a process of their own (0:
    /// half the clients, in this process, each as fast as it is answered).
    #[arg(long, default_value_t = 600, value_name = "PER_SECOND")]
    load_rate: u64,
    /// Check that the harness works, fast: 2,000 users, 1 s per timed
    /// scenario, 4 clients, 2 runs, 5,000 import rows (for CI, never a
    /// verdict on speed).
    #[arg(long)]
    quick: bool,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// Be the load client of another run (see `client::external`).
    #[command(flatten)]
    client: client::ClientArgs,
}

fn args(cli: Cli) -> Args {
    let quick = cli.quick;
    let scenarios = match &cli.scenarios {
        Some(list) => scenarios(list).unwrap_or_else(|e| {
            <Cli as clap::CommandFactory>::command()
                .error(clap::error::ErrorKind::InvalidValue, e)
                .exit()
        }),
        None => SCENARIOS.to_vec(),
    };
    let size = |n: Option<u64>, quick_n: usize, full: usize| {
        n.map_or(if quick { quick_n } else { full }, |n| n as usize)
    };
    Args {
        users: size(cli.users, 2_000, 100_000),
        seconds: cli.seconds.unwrap_or(if quick { 1 } else { 10 }),
        concurrency: size(cli.concurrency, 4, 8),
        postgres: cli.postgres,
        scenarios,
        runs: size(cli.runs, 2, 10),
        postgraphile: cli.postgraphile,
        node_sqlite: cli.node_sqlite,
        node_pg: cli.node_pg,
        turns: cli.turns,
        growth: cli.growth,
        svg: cli.svg,
        import_rows: size(cli.import_rows, 5_000, 1_000_000),
        api_key_cache_ms: cli.api_key_cache_ms,
        load_rate: cli.load_rate,
    }
}

#[tokio::main]
async fn main() {
    let cli = <Cli as clap::Parser>::parse();
    if cli.client.client {
        client::external(
            &cli.client,
            cli.seconds.unwrap_or(10),
            cli.concurrency.unwrap_or(8),
        )
        .await;
        return;
    }
    let args = args(cli);
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
                    " and PostGraphile 4 and 5"
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
            api_key_cache_ms: args.api_key_cache_ms,
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
        let mut pg = Vec::new();
        if args.postgraphile {
            for (version, name) in [
                (postgraphile::Version::V4, compare::POSTGRAPHILE4),
                (postgraphile::Version::V5, compare::POSTGRAPHILE5),
            ] {
                pg.push((name, postgraphile::start(&conn, &url, version).await));
            }
        }
        let sql = handwritten::start(&url).await;
        let node_reader = match (args.node_sqlite, args.node_pg) {
            (true, _) => {
                let file = tmp.path().join("bench.db");
                Some(nodereader::start(&file.to_string_lossy()).await)
            }
            (_, true) => Some(nodereader::start(&url).await),
            _ => None,
        };
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
            postgraphile: pg
                .iter()
                .map(|(name, pg)| compare::System {
                    name,
                    endpoint: pg.endpoint.clone(),
                    key: None,
                })
                .collect(),
            node_reader: node_reader.as_ref().map(|r| (r.name, r.base.clone())),
            ids: &ids,
            seconds: args.seconds,
            concurrency: args.concurrency,
            turns: args.turns,
        };
        comparisons = compare::run(&setup, &segment).await;
        // Shown at once too: the other scenarios may take long.
        eprintln!("\n{}", compare::table(&mut comparisons));
        delete_segment(&client, &endpoint, &key.secret, &segment).await;
        drop(pg);
        drop(node_reader);
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

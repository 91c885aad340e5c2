//! `import`: a generated CSV of M rows (the shape of
//! `benches/generate_people.py`: email, first_name, last_name and the tag
//! columns Department, Region, Job Title) imported three ways, each into a
//! fresh workspace of its own (so each system creates M new users with the
//! same emails, and 3 × M tag assignments):
//!
//! - the CLI: the real binary (`tagsmith import users FILE --workspace W
//!   --database-url URL`, the one cargo built beside this bench) as a child
//!   process, timed from spawn to exit; its peak RSS is the largest `VmHWM`
//!   read from `/proc/PID/status` every 10 ms while it runs;
//! - HTTP: `importUsers(csv)` against the harness's server, one request at a
//!   time, the file cut into chunks of at most 10,000 rows and 900,000 bytes
//!   (under the server's default 1 MiB body limit), each with the header;
//! - hand-written SQL (`handwritten::import`): users, tags and assignments
//!   only, in transactions of the CLI's default 5,000 rows.
//!
//! The automation worker is stopped before this scenario (the last), so
//! each system is timed alone: the outbox events tagsmith writes (one per
//! tag added) stay pending; handling them is the worker's cost, measured by
//! `automation-events`.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use serde_json::json;
use tagsmith::auth::{Role, keys, workspaces};
use tagsmith::db;

use crate::handwritten;

/// The import target of issue 20, rows per second (issue 9 asked 50,000).
const TARGET: f64 = 30_000.0;
/// The CLI's default rows per write transaction (`--batch-size`).
pub const BATCH: usize = tagsmith::import::run::BATCH_SIZE;
/// Rows per `importUsers` request.
const HTTP_ROWS: usize = 10_000;
/// Bytes per `importUsers` request's CSV, at most.
const HTTP_BYTES: usize = 900_000;

const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Marketing",
    "Support",
    "Finance",
    "Legal",
    "Operations",
    "Product",
    "Design",
    "People",
];
const REGIONS: &[&str] = &[
    "EMEA", "APAC", "AMER", "LATAM", "Nordics", "DACH", "UK", "ANZ",
];
const TITLES: &[&str] = &[
    "Account Executive",
    "Developer",
    "Manager",
    "Director",
    "Analyst",
    "Engineer",
    "Designer",
    "Consultant",
    "Specialist",
    "Coordinator",
    "Lead",
    "Architect",
    "Associate",
    "VP",
    "Intern",
    "Administrator",
    "Recruiter",
    "Accountant",
    "Counsel",
    "Researcher",
    "Scientist",
    "Writer",
    "Editor",
    "Planner",
    "Officer",
];
const FIRST: &[&str] = &[
    "Ana", "Bo", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jo",
];
const LAST: &[&str] = &[
    "Lima", "Chen", "Diaz", "Khan", "Smith", "Okafor", "Rossi", "Tanaka",
];

/// Writes `rows` rows to `path`: `user{n:07}@example.com` and values drawn
/// from the lists of `generate_people.py` by a fixed-seed generator (the
/// same file every run; not byte-identical to the Python script's).
pub fn generate(path: &Path, rows: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create the CSV"));
    let mut state: u64 = 7;
    let mut pick = |list: &[&'static str]| -> &'static str {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        list[((state >> 33) % list.len() as u64) as usize]
    };
    writeln!(
        out,
        "email,first_name,last_name,Department,Region,Job Title"
    )
    .expect("write");
    for n in 0..rows {
        let (first, last) = (pick(FIRST), pick(LAST));
        let (department, region, title) = (pick(DEPARTMENTS), pick(REGIONS), pick(TITLES));
        writeln!(
            out,
            "user{n:07}@example.com,{first},{last},{department},{region},{title}"
        )
        .expect("write");
    }
    out.flush().expect("write the CSV");
}

/// One system's import.
struct Measured {
    system: String,
    elapsed: Duration,
    /// Peak resident memory, bytes, and whose.
    peak: Option<(u64, &'static str)>,
    /// Per request (HTTP only): p50 and p99.
    requests: Option<(usize, Duration, Duration)>,
    /// What the workspace holds afterwards.
    counts: Counts,
}

#[derive(Debug, PartialEq, Eq)]
struct Counts {
    users: i64,
    assignments: i64,
    history: i64,
    outbox: i64,
}

/// `VmHWM` of `/proc/PID/status` (or `self`), bytes.
fn peak_rss(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets this process's `VmHWM` to its current RSS (Linux: `5` to
/// `/proc/self/clear_refs`); false if it could not.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Creates a workspace (and, for HTTP, an ADMIN key); returns its id and the key.
async fn workspace(conn: &DatabaseConnection, name: &str) -> (i64, String) {
    let txn = db::begin_write(conn).await.expect("txn");
    let ws = workspaces::create(&*txn, name).await.expect("workspace");
    let key = keys::create(&*txn, ws.id, "bench import", Role::Admin)
        .await
        .expect("key");
    txn.commit().await.expect("commit");
    (ws.id, key.secret)
}

async fn counts(conn: &DatabaseConnection, workspace: i64) -> Counts {
    let count = |sql: String| async move { crate::segments::count_rows(conn, &sql).await };
    Counts {
        users: count(format!(
            "SELECT COUNT(*) FROM users WHERE workspace_id = {workspace}"
        ))
        .await,
        assignments: count(format!(
            "SELECT COUNT(*) FROM tag_assignments WHERE workspace_id = {workspace}"
        ))
        .await,
        history: count(format!(
            "SELECT COUNT(*) FROM tag_changes WHERE workspace_id = {workspace}"
        ))
        .await,
        outbox: count(format!(
            "SELECT COUNT(*) FROM automation_events WHERE workspace_id = {workspace}"
        ))
        .await,
    }
}

/// The CLI as a child process: wall time and its peak RSS.
async fn through_cli(url: &str, file: &Path, workspace: &str, dir: &Path) -> (Duration, u64) {
    let bin = env!("CARGO_BIN_EXE_tagsmith");
    let out = std::fs::File::create(dir.join("cli.out")).expect("cli.out");
    let err = std::fs::File::create(dir.join("cli.err")).expect("cli.err");
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["import", "users"])
        .arg(file)
        .args(["--workspace", workspace, "--database-url", url])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let pid = child.id().to_string();
    let mut peak = 0;
    let status = loop {
        // Read before reaping: the status has no VmHWM once the child exited.
        if let Some(rss) = peak_rss(&pid) {
            peak = peak.max(rss);
        }
        if let Some(status) = child.try_wait().expect("wait for the CLI") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let elapsed = started.elapsed();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    assert!(
        status.success(),
        "tagsmith import failed ({status}):\n{}\n{}",
        read("cli.out"),
        read("cli.err")
    );
    eprintln!("{}", read("cli.out").trim_end());
    (elapsed, peak)
}

/// `importUsers` of the file in chunks, one request at a time; the
/// latencies of the requests.
async fn through_http(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    file: &Path,
    rows: usize,
) -> Vec<Duration> {
    let query = "mutation($csv: String!) { importUsers(csv: $csv) { created updated tagsApplied errors { line message } } }";
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("the CSV"));
    let mut lines = reader.lines();
    let header = lines.next().expect("a header").expect("read");
    let mut latencies = Vec::new();
    let mut created = 0;
    let mut send = async |chunk: &mut String, n: usize| {
        let t = Instant::now();
        let body = crate::client::post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": { "csv": chunk } }),
        )
        .await;
        latencies.push(t.elapsed());
        let result = &body["data"]["importUsers"];
        assert_eq!(result["created"], n, "{result}");
        assert_eq!(result["tagsApplied"], 3 * n, "{result}");
        assert_eq!(result["errors"], json!([]), "{result}");
        created += n;
        chunk.clear();
    };
    let mut chunk = String::with_capacity(HTTP_BYTES + 200);
    let mut n = 0;
    for line in lines {
        let line = line.expect("read");
        if n > 0 && (n == HTTP_ROWS || chunk.len() + line.len() + 1 > HTTP_BYTES) {
            send(&mut chunk, n).await;
            n = 0;
        }
        if n == 0 {
            chunk.push_str(&header);
            chunk.push('\n');
        }
        chunk.push_str(&line);
        chunk.push('\n');
        n += 1;
    }
    if n > 0 {
        send(&mut chunk, n).await;
    }
    assert_eq!(created, rows);
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the scenario; returns the Markdown table and the ratio lines.
pub async fn run(
    conn: &DatabaseConnection,
    url: &str,
    client: &reqwest::Client,
    endpoint: &str,
    rows: usize,
) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("people.csv");
    let started = Instant::now();
    generate(&file, rows);
    let bytes = std::fs::metadata(&file).expect("the CSV").len();
    eprintln!(
        "import: {rows} rows ({:.1} MB) generated in {:.1}s",
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let mut measured = Vec::new();

    eprintln!("import: tagsmith CLI...");
    let (ws, _) = workspace(conn, "import-cli").await;
    let (elapsed, peak) = through_cli(url, &file, "import-cli", dir.path()).await;
    measured.push(Measured {
        system: format!("tagsmith CLI (`tagsmith import users`, batches of {BATCH})"),
        elapsed,
        peak: Some((peak, "the CLI process")),
        requests: None,
        counts: counts(conn, ws).await,
    });

    eprintln!("import: tagsmith importUsers over HTTP...");
    let (ws, key) = workspace(conn, "import-http").await;
    let reset = reset_peak();
    let started = Instant::now();
    let mut latencies = through_http(client, endpoint, &key, &file, rows).await;
    let elapsed = started.elapsed();
    latencies.sort();
    measured.push(Measured {
        system: format!("tagsmith `importUsers` (HTTP, ≤ {HTTP_ROWS} rows per request)"),
        elapsed,
        peak: reset
            .then(|| peak_rss("self"))
            .flatten()
            .map(|p| (p, "the harness: server and client")),
        requests: Some((
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        )),
        counts: counts(conn, ws).await,
    });

    eprintln!("import: hand-written SQL...");
    let (ws, _) = workspace(conn, "import-sql").await;
    let reset = reset_peak();
    let started = Instant::now();
    let written = handwritten::import(url, ws, &file, BATCH).await;
    let elapsed = started.elapsed();
    assert_eq!(written, rows as u64);
    measured.push(Measured {
        system: format!("hand-written SQL (sqlx, transactions of {BATCH} rows)"),
        elapsed,
        peak: reset
            .then(|| peak_rss("self"))
            .flatten()
            .map(|p| (p, "the harness")),
        requests: None,
        counts: counts(conn, ws).await,
    });

    let rows_i = rows as i64;
    for m in &measured {
        assert_eq!(
            (m.counts.users, m.counts.assignments),
            (rows_i, 3 * rows_i),
            "{}: every row imported with its three tags",
            m.system
        );
    }
    table(&measured, rows, bytes, conn.get_database_backend())
}

fn table(measured: &[Measured], rows: usize, bytes: u64, backend: sea_orm::DbBackend) -> String {
    let rate = |m: &Measured| rows as f64 / m.elapsed.as_secs_f64();
    let mut out = format!(
        "import: {rows} rows ({:.1} MB, 3 tag columns: {} tags added per system), each system into a \
         fresh workspace, the automation worker stopped ({backend:?})\n\n\
         | system | rows | seconds | rows/s | peak memory | history rows | outbox events | requests (p50 / p99 ms) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        bytes as f64 / 1e6,
        3 * rows,
    );
    for m in measured {
        let peak = m.peak.map_or("-".to_owned(), |(b, whose)| {
            format!("{:.0} MB ({whose})", b as f64 / 1e6)
        });
        let requests = m.requests.map_or("-".to_owned(), |(n, p50, p99)| {
            format!(
                "{n} ({:.0} / {:.0})",
                p50.as_secs_f64() * 1000.0,
                p99.as_secs_f64() * 1000.0
            )
        });
        out.push_str(&format!(
            "| {} | {rows} | {:.1} | {:.0} | {peak} | {} | {} | {requests} |\n",
            m.system,
            m.elapsed.as_secs_f64(),
            rate(m),
            m.counts.history,
            m.counts.outbox,
        ));
    }
    let sql = rate(&measured[2]);
    out.push_str(&format!(
        "\nimport against the target of {TARGET:.0} rows/s and the hand-written SQL ({sql:.0} rows/s): \
         CLI {:.2}× the target, {:.2}× the SQL; importUsers (HTTP) {:.2}× the target, {:.2}× the SQL; \
         hand-written SQL {:.2}× the target. The hand-written SQL writes users, tags and assignments \
         only: no history row and no outbox event per tag added, which tagsmith's design requires \
         for every change (DESIGN.md, Tags and Automation), so the ratio is the price of those \
         (and of the checks and the segment re-evaluation of the write path).",
        rate(&measured[0]) / TARGET,
        rate(&measured[0]) / sql,
        rate(&measured[1]) / TARGET,
        rate(&measured[1]) / sql,
        sql / TARGET,
    ));
    out
}

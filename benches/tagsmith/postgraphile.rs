//! PostGraphile v4 (npm, pinned in `benches/postgraphile/`) serving the
//! benchmark's PostgreSQL database: the auto-generated GraphQL baseline.
//!
//! Install once: `npm ci --prefix benches/postgraphile`. The harness applies
//! `benches/postgraphile/schema.sql` (a view declaring the relations of the
//! polymorphic tag assignments) to its throwaway database, starts
//! `postgraphile -c URL -s public` on a free port, waits until it answers,
//! and kills it when done.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/postgraphile")
}

/// A running PostGraphile; killed when dropped.
pub struct PostGraphile {
    child: Child,
    pub endpoint: String,
}

impl Drop for PostGraphile {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies the benchmark's view and starts PostGraphile on `url`.
pub async fn start(conn: &DatabaseConnection, url: &str) -> PostGraphile {
    let bin = dir().join("node_modules/.bin/postgraphile");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix benches/postgraphile` first",
        bin.display()
    );
    let schema = std::fs::read_to_string(dir().join("schema.sql")).expect("schema.sql");
    conn.execute_unprepared(&schema)
        .await
        .expect("apply benches/postgraphile/schema.sql");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(&bin)
        .args(["-c", url, "-s", "public", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string()])
        .args(["--disable-default-mutations", "--disable-query-log"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start PostGraphile");
    let running = PostGraphile {
        child,
        endpoint: format!("http://127.0.0.1:{port}/graphql"),
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = client
            .post(&running.endpoint)
            .json(&serde_json::json!({ "query": "{ __typename }" }))
            .send()
            .await;
        if matches!(&answer, Ok(r) if r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "PostGraphile did not answer within 90 s: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "PostGraphile ready at {} in {:.1}s",
        running.endpoint,
        started.elapsed().as_secs_f64()
    );
    running
}

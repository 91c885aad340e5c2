//! The hand-written Node readers, the floors of issue 20: the list and the
//! user by id read by Node 22 behind `node:http`, as a person would write
//! them, with the same statements as the sqlx baseline.
//!
//! - `--node-sqlite` (SQLite): `benches/sqlite-reader/serve.mjs`, Node's
//!   built-in `node:sqlite` on the benchmark's file; the SQLite list's
//!   target is ≥ 0.5× of it.
//! - `--node-pg` (PostgreSQL): `benches/postgraphile/pg-reader.mjs`, the
//!   `pg` driver PostGraphile 4 installs there (`npm ci --prefix
//!   benches/postgraphile`); the "hand-written node + pg" column,
//!   which the list's ≥ 0.7× target was written against.
//!
//! Both import `benches/node-readers/common.mjs`: the tags statement, the
//! users' JSON and the HTTP server. Started on a free port; killed when
//! dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::postgraphile::{free_port, node22, wait_until_answers};

/// A running reader; killed when dropped.
pub struct NodeReader {
    child: Child,
    /// Its name in the tables ([`crate::compare::NODE_SQLITE`] or
    /// [`crate::compare::NODE_PG`]).
    pub name: &'static str,
    /// Its base URL (`http://127.0.0.1:P`; `/list` and `/user`).
    pub base: String,
}

impl Drop for NodeReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader of `database`: a SQLite file's path, or a PostgreSQL URL.
/// Waits until it answers.
pub async fn start(database: &str) -> NodeReader {
    let (name, script) = match database.starts_with("postgres") {
        true => (
            crate::compare::NODE_PG,
            "benches/postgraphile/pg-reader.mjs",
        ),
        false => (
            crate::compare::NODE_SQLITE,
            "benches/sqlite-reader/serve.mjs",
        ),
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let port = free_port();
    let child = Command::new(node22())
        .arg("--no-warnings")
        .arg(&script)
        .arg(database)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start the {name}: {e}"));
    let reader = NodeReader {
        child,
        name,
        base: format!("http://127.0.0.1:{port}"),
    };
    let list = serde_json::json!({ "first": 1 });
    let url = format!("{}/list", reader.base);
    wait_until_answers(name, &url, &list, Duration::from_secs(30)).await;
    reader
}

//! The `node:sqlite` reader (`benches/sqlite-reader/serve.mjs`): the list
//! and the user by id read from the benchmark's SQLite file by Node 22's
//! built-in SQLite behind `node:http`, the floor issue 20 sets the SQLite
//! list against (tagsmith ≥ 0.5× of it). Started with `--node-sqlite` on a
//! SQLite run, on a free port; killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::postgraphile::{free_port, node22, wait_until_answers};

/// The running reader; killed when dropped.
pub struct NodeReader {
    child: Child,
    /// Its base URL (`http://127.0.0.1:P`; `/list` and `/user`).
    pub base: String,
}

impl Drop for NodeReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the reader on `file` and waits until it answers.
pub async fn start(file: &Path) -> NodeReader {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/sqlite-reader/serve.mjs");
    let port = free_port();
    let child = Command::new(node22())
        .arg("--no-warnings")
        .arg(&script)
        .arg(file)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the node:sqlite reader");
    let reader = NodeReader {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let list = serde_json::json!({ "first": 1 });
    let url = format!("{}/list", reader.base);
    wait_until_answers(
        "the node:sqlite reader",
        &url,
        &list,
        Duration::from_secs(30),
    )
    .await;
    reader
}

//! The GraphQL over HTTP spec's conformance audits (`serverAudits` of the
//! npm package `graphql-http`, run by `tests/audit/audit.mjs`) against a
//! running server: with the default settings and with the production ones.
//!
//! Needs Node 20 and `npm ci --prefix tests/audit`. Without that install the
//! tests say "skipped", unless `TAGSMITH_TEST_AUDIT=1` (CI), which makes a
//! missing install a failure.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::helpers::TestApp;

fn audit_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/audit")
}

/// Whether the audits can run; panics when `TAGSMITH_TEST_AUDIT=1` asks for them and they cannot.
fn audits_installed() -> bool {
    if audit_dir().join("node_modules/graphql-http").is_dir() {
        return true;
    }
    let required = std::env::var("TAGSMITH_TEST_AUDIT").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "TAGSMITH_TEST_AUDIT=1 but tests/audit/node_modules is missing: run `npm ci --prefix tests/audit`"
    );
    eprintln!(
        "skipped: the graphql-http audits are not installed (run `npm ci --prefix tests/audit`; \
         TAGSMITH_TEST_AUDIT=1 makes this a failure)"
    );
    false
}

/// Runs every audit against the app with its ADMIN key; returns the JSON summary.
async fn run_audits(app: &TestApp) -> Value {
    let script = audit_dir().join("audit.mjs");
    let url = format!("{}/graphql", app.address);
    let key = app.admin_key.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(script).arg(url).arg(key).output()
    })
    .await
    .expect("audit thread")
    .expect("`node` runs (Node 20 or newer on the PATH)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 0: every MUST passed; 1: some MUST failed (both print the summary); else the audits could not run.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "the audits could not run ({:?}): {stderr}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "audit.mjs printed no JSON ({e}): {}{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Prints every audit's result and fails on any MUST or SHOULD that fails,
/// except those in `refused`: these must fail, and only because the server
/// refused their introspection query (`__type`) with FORBIDDEN.
fn check(report: &Value, label: &str, refused: &[&str]) {
    let audits = report["audits"].as_array().expect("audits");
    let of_level = |level: &'static str| audits.iter().filter(move |a| a["level"] == level);
    eprintln!("graphql-http audits, {label}: {}", report["summary"]);
    for audit in audits {
        let status = if audit["ok"] == true {
            "ok".to_owned()
        } else {
            format!(
                "FAILED: {} (status {}, body {})",
                audit["reason"], audit["status"], audit["body"]
            )
        };
        eprintln!("  {} {}: {status}", audit["id"], audit["name"]);
    }
    // The suite the lock file pins has 13 MUSTs and 23 SHOULDs: fewer means it did not run whole.
    assert!(
        of_level("MUST").count() >= 13 && of_level("SHOULD").count() >= 23,
        "{label}: fewer audits than graphql-http 1.23 has: {}",
        report["summary"]
    );
    for id in refused {
        let audit = audits
            .iter()
            .find(|a| a["id"] == *id)
            .unwrap_or_else(|| panic!("{label}: no audit {id}"));
        assert!(
            audit["ok"] != true
                && audit["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("FORBIDDEN")),
            "{label}: audit {id} should have been refused as introspection: {audit}"
        );
    }
    let failed: Vec<String> = of_level("MUST")
        .chain(of_level("SHOULD"))
        .filter(|a| a["ok"] != true && !refused.iter().any(|id| a["id"] == *id))
        .map(|a| format!("{} {}: {} ({})", a["id"], a["name"], a["reason"], a["body"]))
        .collect();
    assert!(
        failed.is_empty(),
        "{label}: audits failed:\n{}",
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_audits_pass() {
    if !audits_installed() {
        return;
    }
    let app = TestApp::builder().spawn_sqlite().await;
    let report = run_audits(&app).await;
    check(&report, "default settings", &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_over_http_audits_pass_with_production_settings() {
    if !audits_installed() {
        return;
    }
    let app = TestApp::builder()
        .server(|s| {
            s.production.no_introspection = true;
            s.production.no_suggestions = true;
            s.production.no_graphiql = true;
            s.production.metrics_token = Some("scrape-token".into());
        })
        .spawn_sqlite()
        .await;
    let report = run_audits(&app).await;
    // These four audits send `query Type($name: String!) { __type(name: $name) { name } }`
    // to test variables; with introspection off that query is refused, as it must be.
    // (MUST 28B9, SHOULD 2EA1; MAY D6D5 and 6A70 are the same query by GET.)
    check(
        &report,
        "production settings",
        &["28B9", "2EA1", "D6D5", "6A70"],
    );
}

//! Keys, roles and the first start.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::{Backend, TestApp, error_code, fresh_database, tagsmith};
use crate::on_both_databases;

on_both_databases!(
    missing_and_bad_keys_are_unauthenticated,
    roles_are_enforced,
    created_keys_work_and_revoked_keys_stop,
    introspection_needs_no_key,
    a_key_revoked_elsewhere_stops_within_the_cache_time,
);

async fn missing_and_bad_keys_are_unauthenticated(app: TestApp) {
    let query = "{ users { totalCount } }";
    for key in [None, Some("tsk_0000"), Some("not-a-key"), Some("")] {
        let body = app.graphql_as(key, query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{key:?}: {body}");
        assert!(body["data"].is_null());
    }
    // A header that is not `Bearer <key>`.
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("authorization", format!("Basic {}", app.admin_key))
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

async fn roles_are_enforced(app: TestApp) {
    let viewer = app.key("reader", "VIEWER").await;
    let member = app.key("tagger", "MEMBER").await;
    let developer = app.key("dev", "DEVELOPER").await;
    let user_id = app.user("ana@example.com").await;

    // Everyone reads.
    for key in [&viewer, &member, &developer] {
        let body = app
            .graphql_as(Some(key), "{ users { totalCount } }", json!({}))
            .await;
        assert_eq!(body["data"]["users"]["totalCount"], 1, "{body}");
    }
    let upsert = "mutation { upsertUser(input: { email: \"bo@example.com\" }) { id } }";
    let delete = "mutation($id: ID!) { deleteUser(id: $id) }";
    let create_key = "mutation { createApiKey(name: \"x\", role: VIEWER) { secret } }";
    let cases = [
        (&viewer, upsert, "FORBIDDEN"),
        (&viewer, delete, "FORBIDDEN"),
        (&viewer, create_key, "FORBIDDEN"),
        (&member, delete, "FORBIDDEN"),
        (&member, create_key, "FORBIDDEN"),
        (&developer, create_key, "FORBIDDEN"),
    ];
    for (key, query, code) in cases {
        let body = app
            .graphql_as(Some(key), query, json!({ "id": user_id }))
            .await;
        assert_eq!(error_code(&body), code, "{query}: {body}");
    }
    // Nothing changed.
    assert_eq!(app.user_count().await, 1);
    // And the allowed ones work.
    let body = app.graphql_as(Some(&member), upsert, json!({})).await;
    assert!(body["data"]["upsertUser"]["id"].is_string(), "{body}");
    let body = app
        .graphql_as(Some(&developer), delete, json!({ "id": user_id }))
        .await;
    assert_eq!(body["data"]["deleteUser"], true, "{body}");
    let body = app
        .graphql_as(
            Some(&member),
            "{ viewer { keyName role workspace } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["viewer"],
        json!({ "keyName": "tagger", "role": "MEMBER", "workspace": "default" })
    );
}

async fn created_keys_work_and_revoked_keys_stop(app: TestApp) {
    let key = app.key("ci", "DEVELOPER").await;
    assert!(key.starts_with("tsk_"));
    let query = "{ viewer { keyName role } }";
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(body["data"]["viewer"]["role"], "DEVELOPER");

    let data = app
        .ok("mutation { revokeApiKey(name: \"ci\") }", json!({}))
        .await;
    assert_eq!(data["revokeApiKey"], 1);
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    let body = app
        .graphql("mutation { revokeApiKey(name: \"nope\") }", json!({}))
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
    let body = app
        .graphql(
            "mutation { createApiKey(name: \"  \", role: VIEWER) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
}

async fn introspection_needs_no_key(app: TestApp) {
    let body = app
        .graphql_as(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["__schema"]["queryType"]["name"], "Query",
        "{body}"
    );
}

#[tokio::test]
async fn introspection_can_require_a_key() {
    let app = TestApp::builder()
        .server(|s| s.require_key_for_introspection = true)
        .spawn_sqlite()
        .await;
    let query = "{ __schema { queryType { name } } }";
    let body = app.graphql_as(None, query, json!({})).await;
    assert_eq!(
        body["data"]["__schema"],
        serde_json::Value::Null,
        "hidden without a key: {body}"
    );
    let body = app.graphql(query, json!({})).await;
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");
}

/// Starts the real binary; returns (the ADMIN key if printed, the address).
fn start_binary(database_url: &str) -> (std::process::Child, Option<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ])
        .env("TAGSMITH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tagsmith");
    let stdout = child.stdout.take().unwrap();
    let mut key = None;
    let mut address = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(start) = line.find("tsk_") {
            key.get_or_insert_with(|| line[start..start + 52].to_owned());
        }
        if let Some(rest) = line.strip_prefix("tagsmith: listening on http://") {
            address = Some(rest.split('/').next().unwrap().to_owned());
            break;
        }
    }
    (
        child,
        key,
        address.expect("the server says where it listens"),
    )
}

#[tokio::test]
async fn first_start_prints_an_admin_key_once() {
    let database = fresh_database(Backend::Sqlite).await.expect("SQLite");
    let url = database.url.clone();

    let (mut first, key, address) = start_binary(&url);
    let key = key.expect("first start prints a key");
    let client = reqwest::Client::new();
    let body: serde_json::Value = client
        .post(format!("http://{address}/graphql"))
        .bearer_auth(&key)
        .json(&json!({ "query": "{ viewer { role workspace } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["viewer"],
        json!({ "role": "ADMIN", "workspace": "default" })
    );
    first.kill().unwrap();
    first.wait().unwrap();

    let (mut second, key_again, _) = start_binary(&url);
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(
        key_again, None,
        "the key is printed on the first start only"
    );
}

#[tokio::test]
async fn the_cli_creates_workspaces_and_keys() {
    let database = fresh_database(Backend::Sqlite).await.expect("SQLite");
    let url = database.url.clone();
    let run = |args: &[&str]| {
        let (ok, stdout, stderr) = crate::helpers::tagsmith(&url, args);
        (ok, stdout.trim().to_owned(), stderr)
    };
    let (ok, secret, _) = run(&["workspace", "create", "acme"]);
    assert!(ok && secret.starts_with("tsk_"));
    let (ok, _, stderr) = run(&["workspace", "create", "acme"]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, secret, _) = run(&[
        "key",
        "create",
        "--name",
        "etl",
        "--role",
        "member",
        "--workspace",
        "acme",
    ]);
    assert!(ok && secret.starts_with("tsk_"));
    let (ok, _, stderr) = run(&[
        "key",
        "create",
        "--name",
        "etl",
        "--role",
        "boss",
        "--workspace",
        "acme",
    ]);
    assert!(!ok && stderr.contains("unknown role"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "key",
        "create",
        "--name",
        "etl",
        "--role",
        "viewer",
        "--workspace",
        "nope",
    ]);
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
    let (ok, out, _) = run(&["key", "revoke", "--name", "etl", "--workspace", "acme"]);
    assert!(ok && out.contains("revoked 1"), "{out}");
}

#[tokio::test]
async fn spawn_app_gives_an_admin() {
    let app = TestApp::builder().spawn_sqlite().await;
    let data = app.ok("{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "ADMIN");
}

/// Keys cached for ten minutes, longer than any test runs.
const KEY_CACHE: crate::helpers::Settings = crate::helpers::Settings {
    server: |s| s.api_key_cache_ms = 600_000,
    automation: |_| {},
};
on_both_databases!(settings = KEY_CACHE; the_key_cache_spares_the_database_and_forgets_revoked_keys);

/// A server remembers the keys it read for a while (`--api-key-cache-ms`):
/// the same key again runs no statement on `api_keys`; a revocation through
/// this server forgets it at once, however long the cache would keep it.
async fn the_key_cache_spares_the_database_and_forgets_revoked_keys(app: TestApp) {
    let key = app.key("ci", "DEVELOPER").await;
    let query = "{ viewer { keyName } }";
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(body["data"]["viewer"]["keyName"], "ci", "{body}");
    let (body, statements) = app
        .statements_during(app.graphql_as(Some(&key), query, json!({})))
        .await;
    assert_eq!(body["data"]["viewer"]["keyName"], "ci", "{body}");
    assert!(
        !statements.iter().any(|s| s.contains("api_keys")),
        "the key was read again: {statements:#?}"
    );
    app.ok("mutation { revokeApiKey(name: \"ci\") }", json!({}))
        .await;
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

/// A key revoked elsewhere (here by the CLI, as through another server)
/// stops working on this server once the cache's time (1 s by default)
/// has passed since this server read it.
async fn a_key_revoked_elsewhere_stops_within_the_cache_time(app: TestApp) {
    let key = app.key("etl", "VIEWER").await;
    let query = "{ viewer { keyName } }";
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(body["data"]["viewer"]["keyName"], "etl", "{body}");
    let (ok, stdout, stderr) = tagsmith(
        &app.database_url,
        &["key", "revoke", "--name", "etl", "--workspace", "default"],
    );
    assert!(ok && stdout.contains("revoked 1"), "{stdout}{stderr}");
    tokio::time::sleep(tagsmith::auth::keys::CACHE_TTL + std::time::Duration::from_millis(50))
        .await;
    let body = app.graphql_as(Some(&key), query, json!({})).await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
}

//! GraphiQL used in a real browser (headless Chromium driven by
//! puppeteer-core, `tests/browser/graphiql.mjs`), and GraphQL Code Generator
//! generating TypeScript from the served schema (`tests/browser/codegen.mjs`).
//!
//! Needs Node 20, `npm ci --prefix tests/browser` and, for GraphiQL, the
//! Debian package `chromium` (or `CHROMIUM=/path/to/chrome`). Without them
//! the tests say "skipped", unless `TAGSMITH_TEST_BROWSER=1` (CI), which
//! makes a missing install a failure. Screenshots go to
//! `target/tmp/browser/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether `needs` are all there; panics when `TAGSMITH_TEST_BROWSER=1` asks for the tests and they are not.
fn installed(needs: &[(&Path, &str)]) -> bool {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(path, _)| !path.exists())
        .map(|(_, how)| *how)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("TAGSMITH_TEST_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "TAGSMITH_TEST_BROWSER=1 but missing: {}",
        missing.join("; ")
    );
    eprintln!(
        "skipped: missing {} (TAGSMITH_TEST_BROWSER=1 makes this a failure)",
        missing.join("; ")
    );
    false
}

/// Runs `node SCRIPT ARGS...` off the async threads; panics when node cannot start.
async fn node(script: &str, args: Vec<String>) -> Output {
    let script = browser_dir().join(script);
    tokio::task::spawn_blocking(move || Command::new("node").arg(script).args(args).output())
        .await
        .expect("node thread")
        .expect("`node` runs (Node 20 or newer on the PATH)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The step of the browser's report called `name`.
fn step<'a>(seen: &'a Value, name: &str) -> &'a Value {
    seen["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name:?} in {seen:#}"))
}

async fn seed_a_user(app: &TestApp) {
    let body = app
        .graphql(
            r#"mutation { upsertAccount(input: { externalId: "acme", name: "Acme" }) { id } }"#,
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = app
        .graphql(
            r#"mutation { upsertUser(input: { email: "ada@example.com", firstName: "Ada", accountExternalId: "acme" }) { id } }"#,
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_the_sample_query_and_shows_the_docs_in_chromium() {
    let puppeteer = browser_dir().join("node_modules/puppeteer-core");
    let chromium = chromium();
    if !installed(&[
        (
            &puppeteer,
            "puppeteer-core (`npm ci --prefix tests/browser`)",
        ),
        (
            &chromium,
            "Chromium (`apt-get install chromium`, or CHROMIUM=...)",
        ),
    ]) {
        return;
    }
    let app = spawn_app().await;
    seed_a_user(&app).await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let output = node(
        "graphiql.mjs",
        vec![
            app.address.clone(),
            app.admin_key.clone(),
            shots.display().to_string(),
        ],
    )
    .await;
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "the browser could not finish: {stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("graphiql.mjs printed no JSON ({e}): {stderr}"));
    eprintln!("GraphiQL screenshots in {}", shots.display());

    // The key typed in the Headers tab reached the server: the sample query ran as ADMIN.
    let result = &step(&seen, "ran the sample query")["result"];
    assert!(result.get("errors").is_none(), "{result}");
    assert_eq!(result["data"]["viewer"]["role"], "ADMIN");
    assert_eq!(result["data"]["users"]["totalCount"], 1);
    assert_eq!(
        result["data"]["users"]["nodes"][0]["email"],
        "ada@example.com"
    );
    assert_eq!(
        result["data"]["users"]["nodes"][0]["account"]["name"],
        "Acme"
    );

    // GraphiQL's own introspection answered, so the Docs explorer has the schema.
    let introspection = seen["introspection"].as_array().expect("introspection");
    assert!(!introspection.is_empty(), "GraphiQL sent no introspection");
    for sent in introspection {
        assert_eq!(sent["status"], 200, "{sent:.300}");
        assert!(sent["errors"].is_null(), "{sent:.600}");
        assert!(sent["types"].as_u64() > Some(50), "{sent:.300}");
    }
    let docs = step(&seen, "docs opened");
    assert_eq!(docs["docErrors"], json!([]), "the Docs pane shows an error");
    for root in ["query", "mutation", "subscription"] {
        assert!(
            docs["rootTypes"].as_array().unwrap().contains(&json!(root)),
            "{docs}"
        );
    }
    let query_fields = &step(&seen, "docs of Query")["fields"];
    for field in ["users", "accounts", "tags", "segments", "viewer"] {
        assert!(
            query_fields.as_array().unwrap().contains(&json!(field)),
            "{query_fields}"
        );
    }
    let mutation_fields = &step(&seen, "docs of Mutation")["fields"];
    for field in ["upsertUser", "addTags", "createSegment", "uploadScript"] {
        assert!(
            mutation_fields.as_array().unwrap().contains(&json!(field)),
            "{mutation_fields}"
        );
    }

    // Typing "us" in the editor offers the fields that match.
    let completions = &step(&seen, "autocompletion")["completions"];
    for field in ["user", "users"] {
        assert!(
            completions.as_array().unwrap().contains(&json!(field)),
            "{completions}"
        );
    }

    // Nothing failed to load and the page logged no error.
    assert_eq!(seen["failedLoads"], json!([]));
    assert_eq!(seen["consoleErrors"], json!([]));
    for name in [
        "graphiql-1-sample-query",
        "graphiql-2-docs",
        "graphiql-4-autocompletion",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "no screenshot {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_code_generator_makes_typescript_from_the_served_schema() {
    let codegen = browser_dir().join("node_modules/@graphql-codegen/cli");
    if !installed(&[(
        &codegen,
        "@graphql-codegen/cli (`npm ci --prefix tests/browser`)",
    )]) {
        return;
    }
    let app = spawn_app().await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("tagsmith.ts");
    let output = node(
        "codegen.mjs",
        vec![
            format!("{}/graphql", app.address),
            file.display().to_string(),
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "codegen failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let types = std::fs::read_to_string(&file).expect("codegen wrote its file");
    for expected in [
        "export type Query = {",
        "export type Mutation = {",
        "export type User = Node & {",
        "export type Tag = Node & {",
        "export enum Role {",
        // The operations in tests/browser/operations/, typed against the schema.
        "export type FirstLookQuery = { __typename?: 'Query', viewer: { __typename?: 'Viewer', keyName: string, role: Role, workspace: string }",
        "export type TagUserMutationVariables = Exact<{",
    ] {
        assert!(
            types.contains(expected),
            "no {expected:?} in the generated TypeScript"
        );
    }
}

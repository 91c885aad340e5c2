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
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::helpers::TestApp;

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

/// Whether puppeteer-core and Chromium are there (see [`installed`]).
fn browser_installed() -> bool {
    let puppeteer = browser_dir().join("node_modules/puppeteer-core");
    let chromium = chromium();
    installed(&[
        (
            &puppeteer,
            "puppeteer-core (`npm ci --prefix tests/browser`)",
        ),
        (
            &chromium,
            "Chromium (`apt-get install chromium`, or CHROMIUM=...)",
        ),
    ])
}

/// Runs the browser script `script` with `args` and the screenshot folder
/// (`target/tmp/browser/`) last; returns its report and that folder.
/// Panics when a step could not run.
async fn in_chromium(script: &str, mut args: Vec<String>) -> (Value, PathBuf) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    args.push(shots.display().to_string());
    let output = node(script, args).await;
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "the browser could not finish: {stderr}"
    );
    let seen: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stderr}"));
    eprintln!("{script}: screenshots in {}", shots.display());
    (seen, shots)
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
    if !browser_installed() {
        return;
    }
    let app = TestApp::builder().spawn_sqlite().await;
    seed_a_user(&app).await;
    let (seen, shots) = in_chromium(
        "graphiql.mjs",
        vec![app.address.clone(), app.admin_key.clone()],
    )
    .await;

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
    let app = TestApp::builder().spawn_sqlite().await;
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

/// A webhook receiver on 127.0.0.1 answering 200 to every POST; the
/// requests it got (headers and body), in order.
type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;

async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let recorded = Arc::clone(&received);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let recorded = Arc::clone(&recorded);
                async move {
                    recorded.lock().unwrap().push((headers, body));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// The console (`/console`) in Chromium: an admin writes, tests and uploads a
/// script, writes a segment with a live count and a trigger and sees its
/// entries charted, opens a tag's usage, creates a webhook and redelivers
/// its delivery; a VIEWER sees the scripts but cannot upload. Each thing
/// seen is checked against the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_writes_tests_and_uploads_a_script_and_a_segment_in_chromium() {
    if !browser_installed() {
        return;
    }
    let app = TestApp::builder()
        .automation(|automation| {
            automation.webhooks.webhook_allow_hosts = vec!["127.0.0.1".into()];
            automation.webhooks.webhook_retry_schedule = "50ms,50ms".into();
        })
        .spawn_sqlite()
        .await;
    let (hook_url, received) = receiver().await;
    seed_a_user(&app).await;
    app.ok(
        r#"mutation { addTags(subjectId: "VXNlcjox", tags: ["Webinar Attendee"]) { __typename } }"#,
        json!({}),
    )
    .await;
    let bob = app
        .ok(
            r#"mutation { upsertUser(input: { email: "bob@example.com" }) { id } }"#,
            json!({}),
        )
        .await["upsertUser"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let viewer_key = app.key("dashboard", "VIEWER").await;
    let (seen, shots) = in_chromium(
        "console.mjs",
        vec![
            app.address.clone(),
            app.admin_key.clone(),
            viewer_key,
            bob.clone(),
            hook_url.clone(),
        ],
    )
    .await;

    // A wrong key shows the API's code; the right one shows who is signed in, kept out of the URL.
    let wrong = step(&seen, "wrong key")["error"].as_str().unwrap();
    assert!(wrong.starts_with("UNAUTHENTICATED "), "{wrong}");
    let signed_in = step(&seen, "signed in");
    assert_eq!(signed_in["role"], "ADMIN");
    assert_eq!(signed_in["workspace"], "default");
    assert_eq!(signed_in["stored"], app.admin_key.as_str());
    assert_eq!(signed_in["local"], 0, "the key went to localStorage");
    assert!(!signed_in["url"].as_str().unwrap().contains("tsk_"));

    // The syntax error is marked where checkScript puts it.
    let marked = step(&seen, "syntax error marked");
    let check = app
        .ok(
            "query($s: String!) { checkScript(source: $s) { line column message } }",
            json!({ "s": marked["source"] }),
        )
        .await;
    let diagnostic = &check["checkScript"][0];
    assert_eq!(diagnostic["line"], 3, "{check}");
    assert_eq!(marked["gutterLine"], diagnostic["line"], "{marked}");
    assert_eq!(marked["highlightedLine"], diagnostic["line"], "{marked}");
    assert_eq!(marked["line"], diagnostic["line"], "{marked}");
    assert_eq!(marked["column"], diagnostic["column"], "{marked}");
    assert_eq!(marked["rangeColumn"], diagnostic["column"], "{marked}");
    assert!(
        marked["message"]
            .as_str()
            .unwrap()
            .ends_with(diagnostic["message"].as_str().unwrap()),
        "{marked}"
    );
    let fixed = step(&seen, "fixed");
    assert_eq!(fixed["marked"], 0, "{fixed}");
    let keywords = fixed["keywords"].as_array().unwrap();
    for keyword in ["fn", "let", "if"] {
        assert!(keywords.contains(&json!(keyword)), "{fixed}");
    }
    assert!(
        fixed["strings"]
            .as_array()
            .unwrap()
            .contains(&json!("\"Qualified Lead\"")),
        "{fixed}"
    );
    // The text as typed (8 lines with the last, empty one), numbered.
    let source = fixed["source"].as_str().unwrap();
    assert!(
        source.contains("        s.add_tag(\"Qualified Lead\");\n"),
        "{fixed}"
    );
    let numbers = fixed["lineNumbers"].as_array().unwrap();
    for n in 1..=source.lines().count() + 1 {
        assert!(numbers.contains(&json!(n.to_string())), "{n}: {fixed}");
    }

    // The dry run's plan and log, for Ada.
    let tested = step(&seen, "tested");
    assert_eq!(tested["ok"], "true", "{tested}");
    assert_eq!(
        tested["actions"],
        json!(["ADDED \"Qualified Lead\" on ada@example.com"])
    );
    assert!(
        tested["logs"]
            .as_str()
            .unwrap()
            .contains("qualified ada@example.com"),
        "{tested}"
    );

    // Uploaded, enabled, and run by the worker when Bob was tagged.
    let uploaded = step(&seen, "uploaded");
    assert_eq!(uploaded["version"], "1", "{uploaded}");
    assert_eq!(uploaded["enabled"], "yes", "{uploaded}");
    let scripts = app
        .ok("{ scripts { name version enabled hooks } }", json!({}))
        .await;
    assert_eq!(
        scripts["scripts"],
        json!([{ "name": "webinar", "version": 1, "enabled": true, "hooks": ["TAG_ADDED"] }])
    );
    let toggled = step(&seen, "toggled");
    assert_eq!(toggled["disabled"], false, "{toggled}");
    assert_eq!(toggled["enabled"], true, "{toggled}");
    let ran = step(&seen, "run appeared");
    assert!(ran["tagged"].get("errors").is_none(), "{ran}");
    // Columns: at, version, event, subject, result, actions, logs, µs. The
    // run that tagged Bob "Qualified Lead" (that tag's own event may run it again).
    let runs = ran["runs"].as_array().unwrap();
    assert!(
        runs.iter().any(|run| run[1] == "1"
            && run[2] == "TAG_ADDED"
            && run[3] == "bob@example.com"
            && run[4] == "ok"
            && run[5] == "+ Qualified Lead"
            && run[6] == "qualified bob@example.com"),
        "{ran}"
    );

    // The edit's difference from version 1.
    let diff = step(&seen, "diff");
    assert_eq!(
        diff["heading"],
        "Changes from version 1 (uploading makes version 2)"
    );
    assert_eq!(diff["added"], json!(["+ // version 2"]));
    assert_eq!(diff["removed"], json!([]));

    // Segments: the filter's error where the API puts it, the live count
    // the API gives, the saved segment's memberCount and the change
    // preview (each read from the API when the page showed it).
    let error = step(&seen, "filter error");
    let extensions = &error["api"]["errors"][0]["extensions"];
    assert_eq!(extensions["code"], "BAD_USER_INPUT", "{error}");
    assert_eq!(error["line"], extensions["line"], "{error}");
    assert_eq!(error["column"], extensions["column"], "{error}");
    assert_eq!(error["marked"]["range"], extensions["line"], "{error}");
    assert_eq!(error["marked"]["gutter"], extensions["line"], "{error}");
    let live = step(&seen, "live count");
    assert_eq!(
        live["count"], live["api"]["data"]["previewSegment"]["count"],
        "{live}"
    );
    // Ada, and Bob, tagged above.
    assert_eq!(live["count"], 2, "{live}");
    assert_eq!(
        live["sample"],
        json!(["ada@example.com", "bob@example.com"])
    );
    let saved = step(&seen, "segment saved");
    let segment = &saved["api"]["data"]["segments"][0];
    assert_eq!(segment["name"], "Webinar people", "{saved}");
    assert_eq!(saved["members"], segment["memberCount"], "{saved}");
    assert_eq!(
        saved["result"],
        "Saved Webinar people: 2 members, tracked (triggers fire on entry and exit)."
    );
    assert_eq!(segment["tracked"], true, "{saved}");
    assert_eq!(
        segment["onEntry"]["add"],
        json!([{ "name": "Follow Up" }]),
        "{saved}"
    );

    // Carol's entry, on the chart as the API counts it: one entry, today.
    let activity = step(&seen, "activity");
    assert!(
        activity["carolTagged"].get("errors").is_none(),
        "{activity}"
    );
    let days = &activity["api"]["data"]["segmentActivity"];
    assert_eq!(activity["days"], *days, "{activity}");
    let days = days.as_array().unwrap();
    assert_eq!(days.len(), 30);
    let entered: i64 = days.iter().map(|d| d["entered"].as_i64().unwrap()).sum();
    let exited: i64 = days.iter().map(|d| d["exited"].as_i64().unwrap()).sum();
    assert_eq!((entered, exited), (1, 0), "{activity}");
    assert_eq!(days[29]["entered"], 1, "{activity}");
    assert_eq!(activity["bars"], json!([days[29]["date"]]), "{activity}");
    assert_eq!(activity["summary"], "1 entered, 0 left");
    let change = step(&seen, "change preview");
    let c = &change["api"]["data"]["previewSegmentChange"];
    assert_eq!(
        change["summary"],
        format!(
            "Saving: {} will leave, {} will enter, {} stay.",
            c["exiting"], c["entering"], c["staying"]
        ),
        "{change}"
    );
    let explained = step(&seen, "explained");
    // A tracked segment: since when.
    assert!(
        explained["verdict"]
            .as_str()
            .unwrap()
            .starts_with("ada@example.com is a member since "),
        "{explained}"
    );
    assert_eq!(
        explained["parts"],
        json!([
            "tagged(\"Webinar Attendee\") and email contains \"example\"",
            "tagged(\"Webinar Attendee\")",
            "email contains \"example\""
        ])
    );

    // Tags: the search and the usage.
    assert_eq!(
        step(&seen, "tag search")["rows"],
        json!(["Webinar Attendee"])
    );
    let usage = step(&seen, "tag usage");
    assert_eq!(usage["segments"], json!(["Webinar people"]));
    assert_eq!(usage["scripts"], json!(["webinar (version 1)"]));

    // The rename rewrote the segment's filter and named the script to edit.
    let renamed = step(&seen, "tag renamed");
    assert_eq!(renamed["result"], "Renamed to Webinar 2026 Attendee.");
    assert_eq!(
        renamed["rewritten"],
        json!(["Webinar people tagged(\"Webinar 2026 Attendee\") and email contains \"example\""])
    );
    assert_eq!(renamed["toEdit"], json!(["webinar"]));
    let filter = app.ok("{ segments { filter } }", json!({})).await;
    assert_eq!(
        filter["segments"][0]["filter"],
        "tagged(\"Webinar 2026 Attendee\") and email contains \"example\""
    );

    // The workbook: a dry run that wrote nothing, then its users with their `Column: value` tags.
    let imported = step(&seen, "imported");
    assert_eq!(
        imported["dryRun"],
        "Dry run, nothing written: 4 rows read, 3 would be created, 0 would be updated, 1 line skipped."
    );
    assert_eq!(imported["dryErrors"][0][0], "5", "{imported}");
    assert_eq!(
        imported["usersAfterDryRun"]["data"]["users"]["totalCount"],
        0
    );
    let users = imported["users"]["data"]["users"]["nodes"]
        .as_array()
        .unwrap();
    assert_eq!(users.len(), 3, "{imported}");
    let applied: usize = users
        .iter()
        .map(|u| u["tags"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        imported["counts"],
        format!(
            "Imported: 4 rows read, 3 created, 0 updated, {applied} tags applied, 1 line skipped."
        )
    );
    for user in users {
        let tags = user["tags"].as_array().unwrap();
        assert!(!tags.is_empty(), "{user}");
        assert!(
            tags.iter()
                .all(|t| t["name"].as_str().unwrap().contains(": ")),
            "{user}"
        );
    }

    // The webhook: its secret shown once, the delivery it got, redelivered.
    let created = step(&seen, "webhook created");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert!(
        created["notice"]
            .as_str()
            .unwrap()
            .contains("shown only once"),
        "{created}"
    );
    assert_eq!(created["row"][0], hook_url.as_str(), "{created}");
    assert_eq!(created["row"][2], "Webhook Test", "{created}");
    let delivered = step(&seen, "delivered");
    assert_eq!(delivered["secretsLeft"], 0, "{delivered}");
    assert!(delivered["hookTagged"].get("errors").is_none());
    assert_eq!(
        delivered["rows"],
        json!([{ "event": "tag.added", "status": "succeeded", "attempts": 1 }])
    );
    let redelivered = step(&seen, "redelivered");
    assert!(
        redelivered["queued"]
            .as_str()
            .unwrap()
            .starts_with("Queued again"),
        "{redelivered}"
    );
    assert_eq!(
        redelivered["rows"],
        json!([{ "event": "tag.added", "status": "succeeded", "attempts": 2 }])
    );
    assert_eq!(
        redelivered["api"]["data"]["webhooks"][0]["deliveries"]["nodes"],
        json!([{ "eventType": "tag.added", "status": "SUCCEEDED", "attempts": 2 }])
    );
    // Both attempts reached the receiver, the same message, signed with the secret the page showed.
    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let signer = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    for (headers, body) in &requests {
        signer
            .verify(body, headers)
            .expect("signed with the secret shown");
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["type"], "tag.added");
        assert!(body.to_string().contains("Webhook Test"), "{body}");
    }
    assert_eq!(
        requests[0].0.get("webhook-id"),
        requests[1].0.get("webhook-id")
    );

    // A VIEWER sees the scripts and cannot change them.
    let viewer = step(&seen, "viewer");
    assert_eq!(viewer["role"], "VIEWER");
    assert_eq!(viewer["scripts"], json!(["webinar"]));
    for what in [
        "uploadDisabled",
        "testDisabled",
        "toggleDisabled",
        "readOnly",
    ] {
        assert_eq!(viewer[what], true, "{what}: {viewer}");
    }
    assert!(
        viewer["webhooks"]
            .as_str()
            .unwrap()
            .ends_with("Webhooks and their deliveries need the ADMIN role."),
        "{viewer}"
    );

    // Nothing from another host, nothing failed to load, no error in the page.
    assert_eq!(seen["otherHosts"], json!([]));
    assert_eq!(seen["failedLoads"], json!([]));
    assert_eq!(seen["consoleErrors"], json!([]));
    for name in [
        "console-1-script-error",
        "console-2-script-test",
        "console-3-script-uploaded-and-diff",
        "console-4-segment-live-count",
        "console-5-segment-explained",
        "console-6-tag-usage",
        "console-7-tag-renamed",
        "console-4b-segment-activity",
        "console-8-webhook-secret",
        "console-8b-webhook-deliveries",
        "console-8c-import",
        "console-9-viewer",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "no screenshot {name}"
        );
    }
}

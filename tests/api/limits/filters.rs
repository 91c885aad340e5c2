//! Issue 15 (F2, F9): filters and searches an attacker controls. Thousands
//! of `or`/`and` terms, thousands of tag arguments, 50,000-character
//! searches and segments that double at each level once stack-overflowed
//! or exhausted the server; each is refused with BAD_USER_INPUT (the
//! filter ones with line and column), and the server goes on answering.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, error_message};
use crate::on_both_databases;

on_both_databases!(
    long_filters_are_refused_with_their_position,
    long_searches_are_refused,
    doubling_segments_are_refused_before_any_sql,
);

/// Generous: "answered at all", on a debug build and shared cores.
const ANSWERED_WITHIN: Duration = Duration::from_secs(20);

const PREVIEW: &str =
    "query($f: String!) { previewSegment(subjectKind: USER, filter: $f) { count } }";
const USERS: &str = "query($f: String!) { users(filter: $f) { totalCount } }";

fn chain(count: usize, op: &str, term: impl Fn(usize) -> String) -> String {
    (0..count).map(term).collect::<Vec<_>>().join(op)
}

/// Runs `query` with `key`, returns the body, printing how long it took.
async fn timed(app: &TestApp, what: &str, key: &str, query: &str, variables: Value) -> Value {
    let started = Instant::now();
    let body = app.graphql_as(Some(key), query, variables).await;
    let took = started.elapsed();
    eprintln!("{what}: {} in {took:?}", error_code_or_ok(&body));
    assert!(took < ANSWERED_WITHIN, "{what} took {took:?}");
    body
}

fn error_code_or_ok(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("ok")
}

async fn still_healthy(app: &TestApp) {
    let response = app.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 200);
}

async fn long_filters_are_refused_with_their_position(app: TestApp) {
    let viewer = app.key("viewer", "VIEWER").await;
    let tagged = |_| "tagged(\"a\")".to_string();
    let cases = [
        (
            "5,000 or terms in previewSegment",
            PREVIEW,
            chain(5_000, " or ", tagged),
            // The 201st term: 200 × `tagged("a") or `.
            200 * 15 + 1,
            "filter too long: at most 200 terms",
        ),
        (
            "5,000 and terms in users(filter:)",
            USERS,
            chain(5_000, " and ", tagged),
            200 * 16 + 1,
            "filter too long: at most 200 terms",
        ),
        (
            "tagged_any with 5,000 arguments",
            PREVIEW,
            format!("tagged_any({})", chain(5_000, ", ", |_| "\"a\"".into())),
            // The 101st argument: `tagged_any(` and 100 × `"a", `.
            11 + 100 * 5 + 1,
            "tagged_any takes at most 100 tags",
        ),
        (
            "5,000 nested not",
            USERS,
            format!("{}tagged(\"a\")", "not ".repeat(5_000)),
            257,
            "nested too deeply",
        ),
    ];
    for (what, query, filter, column, message) in cases {
        let body = timed(&app, what, &viewer, query, json!({ "f": filter })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{what}: {body:#}");
        let extensions = &body["errors"][0]["extensions"];
        assert_eq!(extensions["line"], 1, "{what}: {body:#}");
        assert_eq!(extensions["column"], column, "{what}: {body:#}");
        assert!(error_message(&body).contains(message), "{what}: {body:#}");
        still_healthy(&app).await;
    }
    // The largest accepted filters run.
    let body = app
        .graphql_as(
            Some(&viewer),
            USERS,
            json!({ "f": chain(200, " and ", |i| format!("tagged(\"t{i}\")")) }),
        )
        .await;
    assert_eq!(body["data"]["users"]["totalCount"], 0, "{body:#}");
    let body = app
        .graphql_as(
            Some(&viewer),
            PREVIEW,
            json!({ "f": format!("tagged_any({})", chain(100, ", ", |i| format!("\"t{i}/*\""))) }),
        )
        .await;
    assert_eq!(body["data"]["previewSegment"]["count"], 0, "{body:#}");
    still_healthy(&app).await;
}

async fn long_searches_are_refused(app: TestApp) {
    let viewer = app.key("viewer", "VIEWER").await;
    let long = "a".repeat(50_001);
    for (what, query) in [
        (
            "users",
            "query($s: String) { users(search: $s) { totalCount } }",
        ),
        (
            "accounts",
            "query($s: String) { accounts(search: $s) { totalCount } }",
        ),
        (
            "tags",
            "query($s: String) { tags(search: $s) { totalCount } }",
        ),
    ] {
        let body = timed(&app, what, &viewer, query, json!({ "s": long })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{what}: {body:#}");
        assert_eq!(
            error_message(&body),
            "search is too long: at most 200 characters",
            "{what}"
        );
        // 200 characters (multi-byte ones too) are a search.
        let body = app
            .graphql_as(
                Some(&viewer),
                query,
                json!({ "s": "é%_".repeat(66) + "xy" }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{what}: {body:#}");
        still_healthy(&app).await;
    }
}

const CREATE: &str = "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }";
const UPDATE: &str =
    "mutation($id: ID!, $input: SegmentInput!) { updateSegment(id: $id, input: $input) { id } }";

fn doubling(i: usize) -> String {
    if i == 1 {
        "tagged(\"a\")".into()
    } else {
        let previous = format!("X{}", i - 1);
        format!("in_segment({previous:?}) or in_segment({previous:?})")
    }
}

fn input(name: &str, filter: &str) -> Value {
    json!({ "name": name, "subjectKind": "USER", "filter": filter })
}

async fn doubling_segments_are_refused_before_any_sql(app: TestApp) {
    app.user("doubled@example.com").await;
    // X{i} names X{i-1} twice: 2^(i-1) terms once expanded. X10 (512) is
    // accepted, X11 (1024) is not.
    let mut ids = Vec::new();
    for i in 1..=10 {
        let data = app
            .ok(
                CREATE,
                json!({ "input": input(&format!("X{i}"), &doubling(i)) }),
            )
            .await;
        ids.push(data["createSegment"]["id"].as_str().unwrap().to_owned());
    }
    let body = app
        .graphql(CREATE, json!({ "input": input("X11", &doubling(11)) }))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(
        error_message(&body).contains("filter too large with its segments expanded"),
        "{body:#}"
    );
    // At the second name, which takes the count past 1000.
    assert_eq!(body["errors"][0]["extensions"]["column"], 33, "{body:#}");
    // Nor can a segment named by X10 grow it past the limit.
    let body = app
        .graphql(
            UPDATE,
            json!({ "id": ids[0], "input": input("X1", "tagged(\"a\") or tagged(\"b\")") }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body:#}");
    assert!(
        error_message(&body).contains("would become too large"),
        "{body:#}"
    );

    // A chain of 15 stored before the limits (written behind the API's back).
    for i in 11..=15 {
        app.ok(
            CREATE,
            json!({ "input": input(&format!("X{i}"), "tagged(\"a\")") }),
        )
        .await;
        app.db
            .execute_unprepared(&format!(
                "UPDATE segments SET filter = '{}' WHERE name = 'X{i}'",
                doubling(i)
            ))
            .await
            .expect("update behind the API");
    }
    let viewer = app.key("viewer", "VIEWER").await;
    for name in ["X12", "X15"] {
        let filter = format!("in_segment({name:?})");
        let body = timed(&app, name, &viewer, PREVIEW, json!({ "f": filter })).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{name}: {body:#}");
        assert_eq!(body["errors"][0]["extensions"]["column"], 12, "{body:#}");
        still_healthy(&app).await;
    }
    // The stored X15 itself is read with its oversized segments as false.
    let body = timed(
        &app,
        "members of X15",
        &viewer,
        "{ segments { name memberCount } }",
        json!({}),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    let body = timed(
        &app,
        "X10",
        &viewer,
        PREVIEW,
        json!({ "f": "in_segment(\"X10\")" }),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body:#}");
    still_healthy(&app).await;
}

//! Operational safety: `/metrics`, and the production settings (introspection,
//! GraphiQL and suggestions off; INTERNAL errors without internals).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, drained, error_code, error_message};
use crate::on_both_databases;

on_both_databases!(
    metrics_count_requests_and_errors,
    metrics_count_script_runs,
    internal_errors_show_no_internals,
    failed_automation_shows_no_internals,
    database_failures_under_rules_stay_internal,
);

const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";

/// Scrapes `/metrics` (with `token` as a bearer token when given); returns the text.
async fn scrape(app: &TestApp, token: Option<&str>) -> String {
    let mut request = app.client.get(format!("{}/metrics", app.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        response.headers()
    );
    response.text().await.expect("text")
}

/// The value of one series (`name{labels}` exactly as rendered); `None` when absent.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// A counter's value; a labelled series not yet seen counts 0.
fn counter(text: &str, name: &str) -> f64 {
    series(text, name).unwrap_or(0.0)
}

fn requests(text: &str, route: &str, class: &str) -> f64 {
    counter(
        text,
        &format!("tagsmith_http_requests_total{{route=\"{route}\",status=\"{class}\"}}"),
    )
}

fn errors(text: &str, code: &str) -> f64 {
    counter(
        text,
        &format!("tagsmith_graphql_errors_total{{code=\"{code}\"}}"),
    )
}

async fn metrics_count_requests_and_errors(app: TestApp) {
    let before = scrape(&app, None).await;
    // Every code's series exists from the start, so a rate over it works.
    for code in [
        "BAD_USER_INPUT",
        "LIMIT_EXCEEDED",
        "INTERNAL",
        "UNAUTHENTICATED",
    ] {
        assert_eq!(
            series(
                &before,
                &format!("tagsmith_graphql_errors_total{{code=\"{code}\"}}")
            ),
            Some(0.0)
        );
    }

    // 3 requests that succeed (2 POST, 1 GET)...
    app.user("ana@example.com").await;
    app.ok("{ users { totalCount } }", json!({})).await;
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // ...and 5 that fail: `first` out of range, an unknown field, a revoked-looking
    // key, a body past the limit (413 before GraphQL runs), a batch of 2 bad operations.
    let body = app
        .graphql("{ users(first: 0) { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "LIMIT_EXCEEDED");
    let body = app
        .graphql("{ users { nodes { emial } } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .graphql_as(Some("tsk_not_a_key"), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let (status, _) = app
        .post_raw("application/json", vec![b' '; 2 * 1024 * 1024])
        .await;
    assert_eq!(status, 413);
    let (status, _) = app
        .post_raw(
            "application/json",
            r#"[{"query":"{ nope }"},{"query":"{ users(first: 101) { totalCount } }"}]"#,
        )
        .await;
    assert_eq!(status, 200);
    // And a path that is no route.
    let response = app.get("/no/such/path").await;
    assert_eq!(response.status(), 404);

    let after = scrape(&app, None).await;
    // /graphql answered 2xx for the 3 good requests, the 3 GraphQL errors and
    // the batch (errors in a 200 response), 4xx for the 413.
    assert_eq!(
        requests(&after, "/graphql", "2xx") - requests(&before, "/graphql", "2xx"),
        7.0,
        "{after}"
    );
    assert_eq!(
        requests(&after, "/graphql", "4xx") - requests(&before, "/graphql", "4xx"),
        1.0,
        "{after}"
    );
    assert_eq!(
        requests(&after, "unmatched", "4xx") - requests(&before, "unmatched", "4xx"),
        1.0
    );
    assert!(requests(&after, "/metrics", "2xx") >= 1.0, "{after}");
    for (code, more) in [
        ("LIMIT_EXCEEDED", 3.0), // first: 0, the 413, first: 101 in the batch
        ("BAD_USER_INPUT", 2.0), // emial, nope in the batch
        ("UNAUTHENTICATED", 1.0),
        ("INTERNAL", 0.0),
        ("FORBIDDEN", 0.0),
    ] {
        assert_eq!(
            errors(&after, code) - errors(&before, code),
            more,
            "{code}: {after}"
        );
    }
}

async fn metrics_count_script_runs(app: TestApp) {
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "picky", "source":
            r#"fn on_tag_added(e) { if e.tag == "Boom" { throw "boom"; } e.subject.add_tag("Seen"); }"# } }),
    )
    .await;
    let ana = app.user("ana@example.com").await;
    let bo = app.user("bo@example.com").await;
    app.ok(ADD, json!({ "id": ana, "tags": ["Fine", "Boom"] }))
        .await;
    app.ok(ADD, json!({ "id": bo, "tags": ["Fine"] })).await;
    drained(&app).await;

    let text = scrape(&app, None).await;
    // Ana: Fine (ok, adds Seen), Boom (fails), Seen (ok); Bo: Fine, Seen. The runs log agrees.
    let runs = app.rows("script_runs").await as f64;
    let failed = app.rows("script_runs WHERE ok = false").await as f64;
    assert_eq!((runs, failed), (5.0, 1.0));
    assert_eq!(counter(&text, "tagsmith_script_runs_total"), runs, "{text}");
    assert_eq!(
        counter(&text, "tagsmith_script_run_failures_total"),
        failed,
        "{text}"
    );
    // Drained: no backlog, no lag.
    assert_eq!(series(&text, "tagsmith_outbox_up"), Some(1.0));
    assert_eq!(
        series(&text, "tagsmith_outbox_pending_events"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "tagsmith_outbox_lag_seconds"),
        Some(0.0),
        "{text}"
    );
}

/// `tagsmith worker --metrics-bind`: a worker in its own process (here, its
/// own state on the same database, the server running none) serves
/// `/healthz` and `/metrics` with the script runs it made, behind the
/// token when one is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_worker_serves_its_own_metrics() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::builder()
            .backend(backend)
            .automation(|a| a.no_worker = true)
            .spawn()
            .await
        else {
            eprintln!("skipped on {backend:?}: TAGSMITH_TEST_DATABASE_URL is not set");
            continue;
        };
        use tagsmith::server::{Shutdown, start_worker_http};
        let worker_app = tagsmith::app::AppState::new(app.db.clone(), Default::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = Shutdown::on(async move {
            let _ = stopped.await;
        });
        let http = start_worker_http(
            worker_app.clone(),
            "127.0.0.1:0",
            Some("s3cret".into()),
            shutdown.clone().wait(),
        )
        .await
        .expect("worker http");
        let worker = worker_app.spawn_automation(&Default::default(), shutdown);
        let base = format!("http://{}", http.addr);
        let get = |path: &str, token: Option<&str>| {
            let mut request = app.client.get(format!("{base}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
        assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
        assert_eq!(get("/graphql", None).await.unwrap().status(), 404);

        app.ok(
            "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
            json!({ "input": { "name": "seen", "source":
                r#"fn on_tag_added(e) { if e.tag == "Fine" { e.subject.add_tag("Seen"); } }"# } }),
        )
        .await;
        let ana = app.user("ana@example.com").await;
        app.ok(ADD, json!({ "id": ana, "tags": ["Fine"] })).await;
        drained(&app).await;
        let text = get("/metrics", Some("s3cret"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Fine (adds Seen) and Seen: two runs, both by this worker.
        assert_eq!(app.rows("script_runs").await, 2);
        assert_eq!(counter(&text, "tagsmith_script_runs_total"), 2.0, "{text}");
        assert_eq!(series(&text, "tagsmith_outbox_pending_events"), Some(0.0));
        // The serving process ran no script.
        let served = scrape(&app, None).await;
        assert_eq!(counter(&served, "tagsmith_script_runs_total"), 0.0);

        stop.send(()).unwrap();
        worker.await.unwrap();
        http.handle.await.unwrap().unwrap();
    }
}

/// Without a worker, events wait: the backlog counts them and the lag is
/// the age of the oldest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_outbox_backlog() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::builder()
            .backend(backend)
            .automation(|a| a.no_worker = true)
            .spawn()
            .await
        else {
            eprintln!("skipped on {backend:?}: TAGSMITH_TEST_DATABASE_URL is not set");
            continue;
        };
        let text = scrape(&app, None).await;
        assert_eq!(series(&text, "tagsmith_outbox_pending_events"), Some(0.0));
        assert_eq!(series(&text, "tagsmith_outbox_lag_seconds"), Some(0.0));

        let started = Instant::now();
        let ana = app.user("ana@example.com").await;
        app.ok(ADD, json!({ "id": ana, "tags": ["A", "B", "C"] }))
            .await;
        let written = Instant::now();
        // A pause, so the oldest event is measurably old (a lower bound, not a timing test).
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The lag is taken while the scrape runs: at least the age at its
        // start, at most the age at its end.
        let lower = written.elapsed().as_secs_f64();
        let text = scrape(&app, None).await;
        let upper = started.elapsed().as_secs_f64();
        let pending = app
            .rows("automation_events WHERE status IN ('pending', 'running')")
            .await;
        assert_eq!(pending, 3);
        assert_eq!(
            series(&text, "tagsmith_outbox_pending_events"),
            Some(3.0),
            "{text}"
        );
        let lag = series(&text, "tagsmith_outbox_lag_seconds").expect("lag");
        // The events were written between `started` and `written`; the scrape began `lower` seconds after.
        assert!(
            lag >= lower - 0.001 && lag <= upper + 0.001,
            "lag {lag} not within [{lower}, {upper}]"
        );

        // A claimed (running) event is still backlog; failed ones are counted apart.
        let claimed = tagsmith::outbox::claim(&app.db)
            .await
            .unwrap()
            .expect("an event");
        tagsmith::outbox::fail(&app.db, &claimed, "given up", 0)
            .await
            .unwrap();
        let text = scrape(&app, None).await;
        assert_eq!(
            series(&text, "tagsmith_outbox_pending_events"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            series(&text, "tagsmith_outbox_failed_events"),
            Some(1.0),
            "{text}"
        );
    }
}

#[tokio::test]
async fn metrics_can_need_a_token_or_be_off() {
    let app = TestApp::builder()
        .server(|s| {
            s.production.metrics_token = Some("scrape-secret".into());
        })
        .spawn_sqlite()
        .await;
    let url = format!("{}/metrics", app.address);
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    // An API key is not the metrics token.
    let response = app
        .client
        .get(&url)
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let text = scrape(&app, Some("scrape-secret")).await;
    assert!(text.contains("tagsmith_outbox_pending_events 0"), "{text}");

    let app = TestApp::builder()
        .server(|s| s.production.no_metrics = true)
        .spawn_sqlite()
        .await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 404);
}

/// Queries that ask for the schema, in every shape.
const INTROSPECTION: [&str; 4] = [
    "{ __schema { queryType { name } } }",
    "{ t: __type(name: \"User\") { name fields { name } } }",
    "query { ...F } fragment F on Query { __schema { types { name } } }",
    "{ ... on Query { __type(name: \"Query\") { name } } }",
];

#[tokio::test]
async fn introspection_off_is_refused_with_a_code() {
    let app = TestApp::builder()
        .server(|s| s.production.no_introspection = true)
        .spawn_sqlite()
        .await;
    for query in INTROSPECTION {
        for key in [Some(app.admin_key.as_str()), None] {
            let body = app.graphql_as(key, query, json!({})).await;
            assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
            assert_eq!(
                error_message(&body),
                "schema introspection is turned off on this server"
            );
            assert!(
                body.get("data").is_none(),
                "a request error has no data: {body}"
            );
        }
    }
    // By GET too, and as a request error (400) in the GraphQL response media type.
    let response = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("query", INTROSPECTION[0])])
        .header("accept", "application/graphql-response+json")
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "FORBIDDEN");
    // `__typename` is not introspection of the schema, and data still flows.
    let data = app
        .ok("{ __typename users { totalCount } }", json!({}))
        .await;
    assert_eq!(
        data,
        json!({ "__typename": "Query", "users": { "totalCount": 0 } })
    );
}

#[tokio::test]
async fn introspection_without_a_key_is_refused_when_a_key_is_required() {
    let app = TestApp::builder()
        .server(|s| s.require_key_for_introspection = true)
        .spawn_sqlite()
        .await;
    for query in INTROSPECTION {
        let body = app.graphql_as(None, query, json!({})).await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{query}: {body}");
        let body = app.graphql(query, json!({})).await;
        assert!(body.get("errors").is_none(), "{query}: {body}");
    }
}

#[tokio::test]
async fn graphiql_off_is_not_found() {
    let app = TestApp::builder()
        .server(|s| s.production.no_graphiql = true)
        .spawn_sqlite()
        .await;
    for path in ["/", "/assets/graphiql.min.js", "/assets/graphiql.min.css"] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    app.ok("{ users { totalCount } }", json!({})).await;
}

#[tokio::test]
async fn suggestions_can_be_left_out() {
    // A misspelled field and a misspelled argument: each gets a "Did you mean" by default.
    let queries = [
        ("{ users { nodes { emaill } } }", "email"),
        ("{ users(firstt: 1) { totalCount } }", "first"),
    ];
    let app = TestApp::builder().spawn_sqlite().await;
    for (query, suggested) in queries {
        let body = app.graphql(query, json!({})).await;
        assert!(
            error_message(&body).contains(&format!("Did you mean \"{suggested}\"")),
            "suggestions are on by default: {body}"
        );
    }

    let app = TestApp::builder()
        .server(|s| s.production.no_suggestions = true)
        .spawn_sqlite()
        .await;
    for (query, _) in queries {
        let body = app.graphql(query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
        assert!(
            !body.to_string().contains("Did you mean"),
            "{query}: {body}"
        );
    }
    let body = app.graphql(queries[0].0, json!({})).await;
    assert_eq!(
        error_message(&body),
        "Unknown field \"emaill\" on type \"User\"."
    );
}

/// The database breaks under the server (a table renamed away): every
/// operation that touches it fails as INTERNAL with the generic message,
/// and no SQL, table name or driver message reaches the client.
async fn internal_errors_show_no_internals(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let ana = app.user("ana@example.com").await;
    let account = app.account("acme", "Acme").await;
    let before = scrape(&app, None).await;
    for table in ["users", "accounts"] {
        app.db
            .execute_unprepared(&format!("ALTER TABLE {table} RENAME TO {table}_gone"))
            .await
            .expect("rename");
    }
    let operations: [(&str, Value); 8] = [
        ("{ users { nodes { email } } }", json!({})),
        ("{ users { totalCount } }", json!({})),
        ("{ user(email: \"ana@example.com\") { id } }", json!({})),
        (
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": ana }),
        ),
        ("{ accounts { nodes { name } } }", json!({})),
        (
            "query($id: ID!) { account(id: $id) { name } }",
            json!({ "id": account }),
        ),
        (
            "mutation { upsertUser(input: { email: \"bo@example.com\" }) { id } }",
            json!({}),
        ),
        (
            "mutation { upsertAccount(input: { externalId: \"x\", name: \"X\" }) { id } }",
            json!({}),
        ),
    ];
    for (query, vars) in &operations {
        let body = app.graphql(query, vars.clone()).await;
        let errors = body["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: no error: {body}"));
        for error in errors {
            assert_eq!(error["extensions"]["code"], "INTERNAL", "{query}: {body}");
            assert_eq!(
                error["message"], "internal error; the server log has the details",
                "{query}: {body}"
            );
        }
        // What the client reads: messages and extensions (not `locations`' "column").
        let text = errors
            .iter()
            .map(|e| format!("{} {}", e["message"], e["extensions"]))
            .collect::<String>()
            .to_lowercase();
        for leak in [
            "_gone",
            "select",
            "insert",
            "update ",
            "from ",
            "table",
            "relation",
            "sqlite",
            "postgres",
            "sqlx",
            "syntax",
            "column",
            "error returned",
            "/tmp",
            "tagsmith.db",
        ] {
            assert!(!text.contains(leak), "{query}: {leak:?} leaked: {body}");
        }
    }
    let after = scrape(&app, None).await;
    assert!(
        errors(&after, "INTERNAL") - errors(&before, "INTERNAL") >= operations.len() as f64,
        "{after}"
    );
}

/// The database fails in the middle of a request, below a domain rule that
/// carries other domains' errors (the segment re-evaluation of a tag change,
/// the subject a script dry run reads): the client sees INTERNAL and the
/// generic message, not BAD_USER_INPUT with the database's text.
async fn database_failures_under_rules_stay_internal(app: TestApp) {
    use sea_orm::ConnectionTrait;

    let ana = app.user("ana@example.com").await;
    app.ok(
        "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }",
        json!({ "input": { "name": "Trials", "subjectKind": "USER",
                "filter": "tagged(\"Trial\")", "onEntry": { "add": ["Welcomed"] } } }),
    )
    .await;
    // The tag write reads only the users' ids; the re-evaluation of the
    // tracked segment reads whole rows, and fails.
    app.db
        .execute_unprepared("ALTER TABLE users RENAME COLUMN first_name TO first_name_gone")
        .await
        .expect("rename column");
    let tagged = app
        .graphql(ADD, json!({ "id": ana, "tags": ["Trial"] }))
        .await;
    assert_internal(&tagged, "first_name");
    // On a connection of its own: a pooled SQLite connection that has not
    // run a statement since the first rename may still hold the schema of
    // before it, and SQLite checks a DDL's columns against that.
    let fresh = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("connect");
    fresh
        .execute_unprepared("ALTER TABLE users RENAME COLUMN first_name_gone TO first_name")
        .await
        .expect("rename column back");
    fresh.close().await.expect("close");
    // The dry run finds the user, then fails reading her tags.
    app.db
        .execute_unprepared("ALTER TABLE tag_assignments RENAME TO tag_assignments_gone")
        .await
        .expect("rename table");
    let dry_run = app
        .graphql(
            "mutation($event: TestEventInput!) { testScript(source: \"fn on_tag_added(e) {}\", event: $event) { ok } }",
            json!({ "event": { "kind": "TAG_ADDED", "subjectId": ana, "tag": "Trial" } }),
        )
        .await;
    assert_internal(&dry_run, "tag_assignments");
}

/// One INTERNAL error with the generic message, naming nothing of the database.
fn assert_internal(body: &Value, table: &str) {
    assert_eq!(crate::helpers::error_code(body), "INTERNAL", "{body}");
    assert_eq!(
        crate::helpers::error_message(body),
        "internal error; the server log has the details",
        "{body}"
    );
    let text = body.to_string().to_lowercase();
    for leak in [
        table,
        "_gone",
        "select",
        "no such",
        "does not exist",
        "sqlx",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {body}");
    }
}

/// The worker's transaction fails on the database (its runs log renamed
/// away): the event is retried, and `lastError`, which DEVELOPER keys read,
/// says so without the database's message.
async fn failed_automation_shows_no_internals(app: TestApp) {
    use sea_orm::ConnectionTrait;

    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "listener", "source": "fn on_tag_added(e) { log(e.tag); }" } }),
    )
    .await;
    app.db
        .execute_unprepared("ALTER TABLE script_runs RENAME TO script_runs_gone")
        .await
        .expect("rename");
    let ana = app.user("ana@example.com").await;
    app.ok(ADD, json!({ "id": ana, "tags": ["Go"] })).await;
    let data = crate::helpers::eventually(
        &app,
        "{ automationEvents { nodes { kind lastError attempts } } }",
        json!({}),
        |data| !data["automationEvents"]["nodes"][0]["lastError"].is_null(),
    )
    .await;
    let event = &data["automationEvents"]["nodes"][0];
    assert_eq!(event["kind"], "TAG_ADDED");
    assert_eq!(
        event["lastError"], "internal error; the server log has the details",
        "{data}"
    );
}

//! Hostile requests (too deep, too complex, thousands of aliases and
//! directives, oversized batches and bodies, nesting bombs) are refused with
//! their code, quickly, while another client goes on being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, error_code, error_message};

mod filters;

/// How long one refusal may take. Generous on purpose (debug build, two
/// cores shared with the bystander): the point is that no request gets to
/// run for long, not a benchmark.
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

struct Hostile {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn single(query: &str) -> Vec<u8> {
    json!({ "query": query }).to_string().into_bytes()
}

fn hostile_requests() -> Vec<Hostile> {
    let mut deep = String::from("totalCount");
    for _ in 0..7 {
        deep = format!("nodes {{ account {{ users {{ {deep} }} }} }}");
    }
    let aliases: String = (0..5000)
        .map(|i| format!("a{i}: users {{ totalCount }} "))
        .collect();
    let directives = "@include(if: true) ".repeat(30_000);
    let nested_list = format!("{}1{}", "[".repeat(4_000), "]".repeat(4_000));
    let nested_filter = format!(
        "{}tagged(\\\"x\\\"){}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let fragments: String = (0..2000)
        .map(|i| format!("fragment F{i} on Query {{ ...F{} }} ", (i + 1) % 2000))
        .collect();
    // Each fragment spreads the next three times: 3^25 fields from 1 KB.
    let fan_out = |levels: usize, on: &str, leaf: &str| {
        let mut fragments: String = (0..levels)
            .map(|i| {
                format!(
                    "fragment F{i} on {on} {{ {leaf} ...F{n} ...F{n} ...F{n} }} ",
                    n = i + 1
                )
            })
            .collect();
        fragments.push_str(&format!("fragment F{levels} on {on} {{ {leaf} }}"));
        fragments
    };
    let schema_aliases = |n: usize| -> String {
        (0..n)
            .map(|i| format!("a{i}: __schema {{ types {{ name fields {{ name }} }} }} "))
            .collect()
    };
    let types_aliases: String = (0..300)
        .map(|i| format!("t{i}: types {{ fields {{ args {{ name }} }} }} "))
        .collect();
    let flat_fields: String = (0..2001).map(|i| format!("f{i}: __typename ")).collect();
    let batch: Vec<Value> = (0..11)
        .map(|_| json!({ "query": "{ viewer { role } }" }))
        .collect();
    let json_bomb = format!(
        "{{\"query\": \"{{ viewer {{ role }} }}\", \"variables\": {{ \"x\": {}1{} }} }}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    vec![
        Hostile {
            name: "selection nested 22 deep",
            body: single(&format!("{{ users {{ {deep} }} }}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "complexity 100 x 100 x 100",
            body: single(
                "{ users(first: 100) { nodes { account { users(first: 100) { nodes { tags { name } } } } } } }",
            ),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "5,000 aliases",
            body: single(&format!("{{ {aliases} }}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "30,000 directives on one field",
            body: single(&format!("{{ users {directives} {{ totalCount }} }}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "list value nested 4,000 deep",
            body: single(&format!(
                "{{ users(search: {nested_list}) {{ totalCount }} }}"
            )),
            status: 200,
            code: "BAD_USER_INPUT",
        },
        Hostile {
            name: "filter with 10,000 nested parentheses",
            body: format!(
                "{{\"query\": \"{{ users(filter: \\\"{nested_filter}\\\") {{ totalCount }} }}\"}}"
            )
            .into_bytes(),
            status: 200,
            code: "BAD_USER_INPUT",
        },
        Hostile {
            name: "2,000 fragments spreading in a cycle",
            body: single(&format!("{{ ...F0 }} {fragments}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "fragments spreading 3 ways, 25 levels",
            body: single(&format!(
                "query {{ ...F0 }} {}",
                fan_out(25, "Query", "__typename")
            )),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "2,001 fields",
            body: single(&format!("{{ {flat_fields} }}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "500 aliases of __schema",
            body: single(&format!("{{ {} }}", schema_aliases(500))),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "150 aliases of __schema (750 fields)",
            body: single(&format!("{{ {} }}", schema_aliases(150))),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "300 aliases inside __schema",
            body: single(&format!("{{ __schema {{ {types_aliases} }} }}")),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "fragments spreading 3 ways inside __type",
            body: single(&format!(
                "{{ __type(name: \"User\") {{ ...F0 }} }} {}",
                fan_out(20, "__Type", "name")
            )),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "ofType chain 30 deep",
            body: single(&format!(
                "{{ __type(name: \"User\") {{ {} name {} }} }}",
                "ofType { ".repeat(30),
                "}".repeat(30)
            )),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "batch of 11 (cap 10)",
            body: serde_json::to_vec(&batch).unwrap(),
            status: 400,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "first: 0",
            body: single("{ users(first: 0) { totalCount } }"),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "first: 101",
            body: single("{ users(first: 101) { totalCount } }"),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "first: 2147483647",
            body: single("{ tags(first: 2147483647) { totalCount } }"),
            status: 200,
            code: "LIMIT_EXCEEDED",
        },
        Hostile {
            name: "JSON nested 100,000 deep",
            body: json_bomb.into_bytes(),
            status: 400,
            code: "BAD_USER_INPUT",
        },
        Hostile {
            name: "10 MiB body",
            body: single(&format!(
                "{{ viewer {{ role }} }} # {}",
                "x".repeat(10 << 20)
            )),
            status: 413,
            code: "LIMIT_EXCEEDED",
        },
    ]
}

/// The resident memory of this process (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_fast_and_spare_other_clients() {
    let app = TestApp::builder().spawn_sqlite().await;
    for i in 0..20 {
        app.user(&format!("u{i}@example.com")).await;
    }
    let url = format!("{}/graphql", app.address);

    // A well-behaved client asking all along.
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = {
        let (client, url, key, stop) = (
            app.client.clone(),
            url.clone(),
            app.admin_key.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut latencies = vec![];
            let mut failures = vec![];
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({ "query": "{ users(first: 5) { totalCount nodes { email } } }" }))
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) => r
                        .json::<Value>()
                        .await
                        .map(|b| b["data"]["users"]["totalCount"] == 20)
                        .unwrap_or(false),
                    Err(_) => false,
                };
                latencies.push(started.elapsed());
                if !ok {
                    failures.push(latencies.len());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (latencies, failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = rss_kib();

    let mut report = vec![];
    for round in 0..3 {
        for hostile in hostile_requests() {
            let started = Instant::now();
            let response = app
                .client
                .post(&url)
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json")
                .body(hostile.body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", hostile.name));
            let status = response.status().as_u16();
            let body: Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", hostile.name));
            let elapsed = started.elapsed();
            assert_eq!(status, hostile.status, "{}: {body:.300}", hostile.name);
            let code = body["errors"][0]["extensions"]["code"].as_str();
            assert_eq!(
                code,
                Some(hostile.code),
                "{}: {}",
                hostile.name,
                &body.to_string()[..body.to_string().len().min(400)]
            );
            assert!(
                elapsed < REFUSED_WITHIN,
                "{} took {elapsed:?} to refuse",
                hostile.name
            );
            if round == 0 {
                report.push((hostile.name, elapsed));
            }
        }
    }
    let rss_after = rss_kib();
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, failures) = bystander.await.unwrap();
    assert!(
        failures.is_empty(),
        "the bystander's requests {failures:?} failed"
    );
    assert!(latencies.len() >= 10, "the bystander was starved");
    latencies.sort();
    let grew_mib = rss_after.saturating_sub(rss_before) / 1024;
    assert!(
        grew_mib < 256,
        "memory grew by {grew_mib} MiB over three rounds of hostile requests"
    );
    for (name, elapsed) in &report {
        eprintln!("limits: {name}: refused in {elapsed:?}");
    }
    eprintln!(
        "limits: bystander {} requests, 0 failed, p50 {:?}, p99 {:?}, max {:?}; RSS {} -> {} MiB",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        rss_before / 1024,
        rss_after / 1024
    );
}

/// An operation still running at its deadline is stopped: its answer is
/// LIMIT_EXCEEDED and a mutation's transaction is rolled back. The test
/// holds the database's write lock, so the mutation has to wait past its
/// deadline whatever the machine's speed.
async fn an_operation_past_its_deadline_is_stopped_and_changes_nothing(backend: Backend) {
    use sea_orm::ConnectionTrait;
    let Some(app) = TestApp::builder()
        .backend(backend)
        .server(|s| s.limits.request_timeout_ms = 300)
        .spawn()
        .await
    else {
        return eprintln!("skipped: TAGSMITH_TEST_DATABASE_URL is not set");
    };
    let lock = tagsmith::db::begin_write(&app.db).await.unwrap();
    if backend == Backend::Postgres {
        lock.execute_unprepared("LOCK TABLE users IN EXCLUSIVE MODE")
            .await
            .unwrap();
    }
    let started = Instant::now();
    let body = app
        .graphql(
            "mutation { upsertUser(input: { email: \"late@example.com\" }) { id } }",
            json!({}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(error_code(&body), "LIMIT_EXCEEDED", "{body}");
    assert!(
        error_message(&body).contains("ran longer than 300 ms"),
        "{body}"
    );
    println!("a mutation waiting for the write lock was stopped after {took:?}");
    drop(lock);
    // The stopped mutation left nothing; the server goes on.
    assert_eq!(
        app.rows("users").await,
        0,
        "the stopped mutation left a user"
    );
    app.user("on-time@example.com").await;
    assert_eq!(app.rows("users").await, 1);
}

#[tokio::test]
async fn an_operation_past_its_deadline_is_stopped_and_changes_nothing_sqlite() {
    an_operation_past_its_deadline_is_stopped_and_changes_nothing(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_operation_past_its_deadline_is_stopped_and_changes_nothing_postgres() {
    an_operation_past_its_deadline_is_stopped_and_changes_nothing(Backend::Postgres).await;
}

/// A client that goes away stops its operation: a mutation waiting for the
/// write lock when its client hangs up never runs, even once the lock is free.
#[tokio::test]
async fn an_operation_whose_client_went_away_is_stopped() {
    let app = TestApp::builder().spawn_sqlite().await;
    let lock = tagsmith::db::begin_write(&app.db).await.unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "query": "mutation { upsertUser(input: { email: \"gone@example.com\" }) { id } }" }))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the request was answered while the lock was held"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock);
    // Another write goes through, after which the abandoned one would have run.
    app.user("present@example.com").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.rows("users WHERE email = 'gone@example.com'").await,
        0,
        "the abandoned mutation ran after its client left"
    );
}

/// A query sent again skips its parse (the server keeps the documents of
/// queries that passed the checks), not the checks that depend on the
/// request: its variables, and introspection for a caller without a key;
/// a query refused for its cost is refused each time it comes.
#[tokio::test]
async fn a_query_sent_again_is_checked_as_the_first_time() {
    let app = TestApp::builder()
        .server(|s| s.require_key_for_introspection = true)
        .spawn_sqlite()
        .await;
    app.user("ann@example.com").await;
    const SEARCH: &str = "query($s: String) { users(search: $s) { nodes { email } } }";
    for _ in 0..2 {
        let data = app.ok(SEARCH, json!({ "s": "ann" })).await;
        assert_eq!(data["users"]["nodes"][0]["email"], "ann@example.com");
        let refused = app.graphql(SEARCH, json!({ "s": "a\u{0}b" })).await;
        assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
        assert!(error_message(&refused).contains("NUL"), "{refused}");
    }
    for _ in 0..3 {
        let over = app
            .graphql("{ users(first: 500) { nodes { id } } }", json!({}))
            .await;
        assert_eq!(error_code(&over), "LIMIT_EXCEEDED", "{over}");
    }
    const SCHEMA: &str = "{ __schema { queryType { name } } }";
    let data = app.ok(SCHEMA, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    let anonymous = app.graphql_as(None, SCHEMA, json!({})).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    // Another operation of the same document, by name: the answer is the
    // named one's, in its selection's order.
    const TWO: &str =
        "query A { viewer { role } } query B { users { totalCount } viewer { role } }";
    for name in ["A", "B", "A"] {
        let request = json!({ "query": TWO, "operationName": name }).to_string();
        let (status, body) = app.post_raw("application/json", request).await;
        assert_eq!(status, 200, "{body}");
        let expected = match name {
            "A" => r#"{"data":{"viewer":{"role":"ADMIN"}}}"#,
            _ => r#"{"data":{"users":{"totalCount":1},"viewer":{"role":"ADMIN"}}}"#,
        };
        assert_eq!(body, expected);
    }
}

//! Hostile requests (too deep, too complex, thousands of aliases and
//! directives, oversized batches and bodies, nesting bombs) are refused with
//! their code, quickly, while another client goes on being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app_on};

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
    let app = spawn_app_on(Backend::Sqlite).await.unwrap();
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

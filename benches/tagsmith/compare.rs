//! `compare`: the same reads and writes through tagsmith's GraphQL, the
//! hand-written SQL baseline and PostGraphile (when started), one after the
//! other on the same data, driven by the same load client: one in this
//! process, and for the list and the user by id also one in a process of
//! its own (`client::from_another_process`), which the targets use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::{Sample, global_id};

/// One system under load: where to send requests, with which key.
#[derive(Clone)]
pub struct System {
    pub name: &'static str,
    pub endpoint: String,
    pub key: Option<String>,
}

/// What `compare` needs to know about the run.
pub struct Setup<'a> {
    pub client: &'a reqwest::Client,
    pub graphql: System,
    /// The hand-written SQL baseline's base URL.
    pub sql: String,
    /// PostGraphile 4 and 5, those started ([`POSTGRAPHILE4`], [`POSTGRAPHILE5`]).
    pub postgraphile: Vec<System>,
    /// The Node reader's name and base URL, when started
    /// (`crate::nodereader`).
    pub node_reader: Option<(&'static str, String)>,
    pub ids: &'a [i64],
    pub seconds: u64,
    pub concurrency: usize,
    /// The turns in which the load from a process of its own gives each
    /// system its `seconds`, round robin.
    pub turns: u64,
}

/// One scenario's samples, one per system, in the order of [`SYSTEMS`].
pub struct Comparison {
    pub scenario: &'static str,
    pub concurrency: usize,
    pub samples: Vec<(&'static str, Sample)>,
}

pub const GRAPHQL: &str = "tagsmith GraphQL";
pub const SQL: &str = "hand-written SQL";
pub const POSTGRAPHILE4: &str = "PostGraphile 4";
pub const POSTGRAPHILE5: &str = "PostGraphile 5";
pub const NODE_SQLITE: &str = "node:sqlite reader";
pub const NODE_PG: &str = "node + pg reader";
pub const SYSTEMS: [&str; 6] = [
    GRAPHQL,
    SQL,
    POSTGRAPHILE4,
    POSTGRAPHILE5,
    NODE_SQLITE,
    NODE_PG,
];

/// The request a client sends for its `n`th pseudo-random draw.
type Body = Arc<dyn Fn(u64) -> Value + Send + Sync>;
/// Reads the figure a response must agree on across systems (a count, or
/// the number of users listed).
type Check = fn(&Value) -> i64;

/// `concurrency` clients posting `body(n)` for `seconds`; every response is
/// checked for errors and its figure collected.
async fn load(
    client: &reqwest::Client,
    system: &System,
    concurrency: usize,
    seconds: u64,
    body: Body,
    check: Check,
) -> (Sample, Vec<i64>) {
    // Warm-up: a few requests outside the timing (connections, plans).
    for n in 0..5 {
        post(client, system, body(n)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers = (0..concurrency)
        .map(|worker| {
            let (client, system, body) = (client.clone(), system.clone(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut figures = Vec::new();
                let mut n: u64 = 0x9E37_79B9 ^ (worker as u64 * 7919);
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let request = body(n >> 33);
                    let t = Instant::now();
                    let answer = post(&client, &system, request).await;
                    latencies.push(t.elapsed());
                    figures.push(check(&answer));
                }
                (latencies, figures)
            })
        })
        .collect::<Vec<_>>();
    let mut latencies = Vec::new();
    let mut figures = Vec::new();
    for worker in workers {
        let (l, f) = worker.await.expect("load client");
        latencies.extend(l);
        figures.extend(f);
    }
    let sample = Sample {
        name: system.name.into(),
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    };
    (sample, figures)
}

async fn post(client: &reqwest::Client, system: &System, body: Value) -> Value {
    let mut request = client.post(&system.endpoint).json(&body);
    if let Some(key) = &system.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let value: Value = response.json().await.expect("JSON");
    assert!(
        status.is_success() && value.get("errors").is_none(),
        "{}: {status} {value}",
        system.name
    );
    value
}

fn sql_system(setup: &Setup, path: &str) -> System {
    System {
        name: SQL,
        endpoint: format!("{}/{path}", setup.sql),
        key: None,
    }
}

/// The Node reader at `path`, when started (it answers the list and the
/// user by id as the hand-written SQL baseline does).
fn node_system(setup: &Setup, path: &str) -> Option<System> {
    setup.node_reader.as_ref().map(|(name, base)| System {
        name,
        endpoint: format!("{base}/{path}"),
        key: None,
    })
}

/// Runs one scenario on each system given, checks that they agree.
async fn scenario(
    setup: &Setup<'_>,
    name: &'static str,
    concurrency: usize,
    systems: Vec<(System, Body, Check)>,
) -> Comparison {
    eprintln!("compare: {name}, {concurrency} clients");
    let mut samples = Vec::new();
    let mut agreed: Option<(&str, i64)> = None;
    for (system, body, check) in systems {
        let (sample, figures) = load(
            setup.client,
            &system,
            concurrency,
            setup.seconds,
            body,
            check,
        )
        .await;
        // Counts may move while addTags runs; every other figure must agree.
        if name != ADD_TAGS {
            // A user may cross the filter's 30-day edge during the run.
            let slack = if name == COUNT_FILTER { 2 } else { 0 };
            let first = figures.first().copied().expect("at least one request");
            assert!(
                figures.iter().all(|f| (f - first).abs() <= slack),
                "{name}: {} answered {figures:?}",
                system.name
            );
            if let Some((other, figure)) = agreed {
                assert!(
                    (first - figure).abs() <= slack,
                    "{name}: {} answered {first}, {other} {figure}",
                    system.name
                );
            }
            agreed = Some((system.name, first));
        }
        samples.push((system.name, sample));
    }
    Comparison {
        scenario: name,
        concurrency,
        samples,
    }
}

pub const LIST: &str = "list 50 users with tags and account";
pub const BY_ID: &str = "one user by id with tags and account";
pub const LIST_EXTERNAL: &str = "list 50 users with tags and account, load from its own process";
pub const BY_ID_EXTERNAL: &str = "one user by id with tags and account, load from its own process";

/// Request bodies of every system, drawn ahead for a load client of its
/// own process (`client::from_another_process`).
fn drawn(systems: &[(System, Body, Check)]) -> Vec<(System, Vec<Value>)> {
    systems
        .iter()
        .map(|(system, body, _)| {
            let mut n: u64 = 0x2545_F491;
            let bodies = (0..1024)
                .map(|_| {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    body(n >> 33)
                })
                .collect();
            (system.clone(), bodies)
        })
        .collect()
}

/// Runs one scenario on each system with the load from another process
/// (the figures were checked by the same scenario in this process).
async fn from_another_process(
    setup: &Setup<'_>,
    name: &'static str,
    systems: Vec<(System, Vec<Value>)>,
) -> Comparison {
    eprintln!(
        "compare: {name}, {} clients in a process of their own",
        setup.concurrency
    );
    // Each system in turns, round robin: a machine whose speed drifts
    // during the run (a shared virtual machine's does) slows them alike.
    let turns = setup.turns.clamp(1, setup.seconds.max(1));
    let mut samples: Vec<(&'static str, Sample)> = Vec::new();
    for _ in 0..turns {
        for (system, bodies) in &systems {
            let sample = crate::client::from_another_process(
                system.name,
                &system.endpoint,
                system.key.as_deref(),
                bodies,
                crate::client::Load {
                    concurrency: setup.concurrency,
                    seconds: setup.seconds / turns,
                    rate: 0,
                    warm_up: true,
                    lead_seconds: 0,
                },
            )
            .await;
            match samples.iter_mut().find(|(name, _)| *name == system.name) {
                Some((_, sum)) => sum.add(sample),
                None => samples.push((system.name, sample)),
            }
        }
    }
    Comparison {
        scenario: name,
        concurrency: setup.concurrency,
        samples,
    }
}
pub const ADD_TAGS: &str = "addTags: one new tag on one user";
pub const COUNT_TAG: &str = "count the users of one tag";
pub const COUNT_FILTER: &str = "count a 3-clause filter (memberCount)";

fn nodes(value: &Value, path: &[&str]) -> i64 {
    let mut v = value;
    for key in path {
        v = &v[key];
    }
    v.as_array().map_or(-1, |a| a.len() as i64)
}

/// Every comparison scenario; `segment` is the id of a segment with the
/// 3-clause filter (for `memberCount`).
pub async fn run(setup: &Setup<'_>, segment: &Value) -> Vec<Comparison> {
    let gql = |query: &'static str| -> Body { Arc::new(move |_| json!({ "query": query })) };
    let pg = setup.postgraphile.clone();
    let mut out = Vec::new();

    // Lists, at 1 and at 32 clients; then at `concurrency` from a client
    // process of its own.
    let mut external = Vec::new();
    const LIST_GQL: &str =
        "{ users(first: 50) { nodes { id email tags { name } account { name } } } }";
    // Version 5 names the primary key `rowId` (its `id` is the global id).
    const LIST_PG4: &str = r#"{ allUsers(first: 50, orderBy: ID_ASC, condition: { workspaceId: "1" }) {
        nodes { id email accountByAccountId { name } userTagsByUserId { nodes { tagByTagId { name } } } } } }"#;
    const LIST_PG5: &str = r#"{ allUsers(first: 50, orderBy: ROW_ID_ASC, condition: { workspaceId: "1" }) {
        nodes { rowId email accountByAccountId { name } userTagsByUserId { nodes { tagByTagId { name } } } } } }"#;
    for concurrency in [1, 32] {
        let mut systems: Vec<(System, Body, Check)> = vec![
            (setup.graphql.clone(), gql(LIST_GQL), |v| {
                nodes(v, &["data", "users", "nodes"])
            }),
            (
                sql_system(setup, "list"),
                Arc::new(|_| json!({ "first": 50 })),
                |v| nodes(v, &["data", "users", "nodes"]),
            ),
        ];
        for pg in &pg {
            let list = if pg.name == POSTGRAPHILE5 {
                LIST_PG5
            } else {
                LIST_PG4
            };
            systems.push((pg.clone(), gql(list), |v| {
                nodes(v, &["data", "allUsers", "nodes"])
            }));
        }
        if let Some(node) = node_system(setup, "list") {
            systems.push((node, Arc::new(|_| json!({ "first": 50 })), |v| {
                nodes(v, &["data", "users", "nodes"])
            }));
        }
        if concurrency == 1 {
            external = drawn(&systems);
        }
        out.push(scenario(setup, LIST, concurrency, systems).await);
    }
    out.push(from_another_process(setup, LIST_EXTERNAL, external).await);

    // One user by id.
    let ids: Arc<Vec<i64>> = Arc::new(setup.ids.to_vec());
    let pick = move |n: u64| ids[n as usize % ids.len()];
    let mut systems: Vec<(System, Body, Check)> = vec![
        (
            setup.graphql.clone(),
            Arc::new({
                let pick = pick.clone();
                move |n| {
                    json!({
                        "query": "query($id: ID!) { user(id: $id) { id email tags { name } account { name } } }",
                        "variables": { "id": global_id("User", pick(n)) },
                    })
                }
            }),
            |v| v["data"]["user"]["email"].is_string() as i64,
        ),
        (
            sql_system(setup, "user"),
            Arc::new({
                let pick = pick.clone();
                move |n| json!({ "id": pick(n) })
            }),
            |v| v["data"]["user"]["email"].is_string() as i64,
        ),
    ];
    for pg in &pg {
        let v5 = pg.name == POSTGRAPHILE5;
        let query = match v5 {
            false => {
                "query($id: BigInt!) { user: userById(id: $id) { id email accountByAccountId { name } userTagsByUserId { nodes { tagByTagId { name } } } } }"
            }
            true => {
                "query($id: BigInt!) { user: userByRowId(rowId: $id) { rowId email accountByAccountId { name } userTagsByUserId { nodes { tagByTagId { name } } } } }"
            }
        };
        systems.push((
            pg.clone(),
            Arc::new({
                let pick = pick.clone();
                move |n| json!({ "query": query, "variables": { "id": pick(n).to_string() } })
            }),
            |v| v["data"]["user"]["email"].is_string() as i64,
        ));
    }
    if let Some(node) = node_system(setup, "user") {
        systems.push((
            node,
            Arc::new({
                let pick = pick.clone();
                move |n| json!({ "id": pick(n) })
            }),
            |v| v["data"]["user"]["email"].is_string() as i64,
        ));
    }
    let external = drawn(&systems);
    out.push(scenario(setup, BY_ID, setup.concurrency, systems).await);
    out.push(from_another_process(setup, BY_ID_EXTERNAL, external).await);

    // addTags: one of 50 tags (new to the subject, mostly) on a random user;
    // each system its own tag names. PostGraphile's mutations are off.
    let systems: Vec<(System, Body, Check)> = vec![
        (
            setup.graphql.clone(),
            Arc::new({
                let pick = pick.clone();
                move |n| {
                    json!({
                        "query": crate::client::ADD_TAGS,
                        "variables": { "id": global_id("User", pick(n)), "tags": [format!("Cmp GQL {}", n % 50)] },
                    })
                }
            }),
            |_| 0,
        ),
        (
            sql_system(setup, "add-tag"),
            Arc::new({
                let pick = pick.clone();
                move |n| json!({ "id": pick(n), "tag": format!("Cmp SQL {}", n % 50) })
            }),
            |_| 0,
        ),
    ];
    out.push(scenario(setup, ADD_TAGS, setup.concurrency, systems).await);

    // Count by tag.
    const COUNT_PG: &str = r#"{ allTags(condition: { workspaceId: "1", name: "Seed 3" }) {
        nodes { userTagsByTagId { totalCount } } } }"#;
    let mut systems: Vec<(System, Body, Check)> = vec![
        (
            setup.graphql.clone(),
            gql(r#"{ tag(name: "Seed 3") { userCount } }"#),
            |v| v["data"]["tag"]["userCount"].as_i64().expect("userCount"),
        ),
        (
            sql_system(setup, "count-tag"),
            Arc::new(|_| json!({ "tag": "Seed 3" })),
            |v| v["data"]["tag"]["userCount"].as_i64().expect("count"),
        ),
    ];
    for pg in &pg {
        systems.push((pg.clone(), gql(COUNT_PG), |v| {
            v["data"]["allTags"]["nodes"][0]["userTagsByTagId"]["totalCount"]
                .as_i64()
                .expect("totalCount")
        }));
    }
    out.push(scenario(setup, COUNT_TAG, setup.concurrency, systems).await);

    // memberCount of the 3-clause filter, one client.
    let segment = segment.clone();
    let systems: Vec<(System, Body, Check)> = vec![
        (
            setup.graphql.clone(),
            Arc::new(move |_| {
                json!({
                    "query": "query($id: ID!) { segment(id: $id) { memberCount } }",
                    "variables": { "id": segment },
                })
            }),
            |v| {
                v["data"]["segment"]["memberCount"]
                    .as_i64()
                    .expect("memberCount")
            },
        ),
        (sql_system(setup, "count"), Arc::new(|_| json!({})), |v| {
            v["data"]["segment"]["memberCount"].as_i64().expect("count")
        }),
    ];
    out.push(scenario(setup, COUNT_FILTER, 1, systems).await);
    out
}

fn rate(sample: &Sample) -> f64 {
    sample.count as f64 / sample.elapsed.as_secs_f64()
}

/// The comparison as a Markdown table: per system requests/s and p50 / p99
/// ms (the systems of the run only); the ratios of tagsmith's throughput to
/// the others'.
pub fn table(comparisons: &mut [Comparison]) -> String {
    let present: Vec<&str> = SYSTEMS
        .into_iter()
        .filter(|system| {
            comparisons
                .iter()
                .any(|c| c.samples.iter().any(|(s, _)| s == system))
        })
        .collect();
    let others = present.iter().skip(1);
    let mut out = String::from("| scenario | clients |");
    for system in &present {
        out.push_str(&format!(" {system} /s (p50 / p99 ms) |"));
    }
    for system in others.clone() {
        out.push_str(&format!(" GraphQL ÷ {system} |"));
    }
    out.push_str("\n| --- | ---: |");
    out.push_str(&" ---: |".repeat(2 * present.len() - 1));
    out.push('\n');
    for c in comparisons {
        let mut cells = Vec::new();
        let mut rates = Vec::new();
        for system in &present {
            match c.samples.iter_mut().find(|(s, _)| s == system) {
                Some((_, sample)) => {
                    let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
                    let (p50, p99) = (ms(sample.percentile(0.5)), ms(sample.percentile(0.99)));
                    cells.push(format!("{:.0} ({p50:.2} / {p99:.2})", rate(sample)));
                    rates.push(Some(rate(sample)));
                }
                None => {
                    cells.push("-".into());
                    rates.push(None);
                }
            }
        }
        for other in &rates[1..] {
            cells.push(match (rates[0], other) {
                (Some(ours), Some(theirs)) => format!("{:.2}×", ours / theirs),
                _ => "-".into(),
            });
        }
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.scenario,
            c.concurrency,
            cells.join(" | ")
        ));
    }
    out
}

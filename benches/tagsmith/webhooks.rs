//! `webhook-latency`: from sending an `addTags` to the webhook request
//! arriving at a receiver on 127.0.0.1, p50/p99, while other clients keep
//! tagging; first with the live receiver alone, then with a dead one beside
//! it (always 500, every event) to show it does not slow the live one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::Args;
use crate::automation::wait_drained;
use crate::client::{Sample, post, probes_under_load};

/// A receiver on 127.0.0.1: answers `status`, and records when each probe
/// (`Probe: N`) arrived.
struct Receiver {
    url: String,
    arrivals: Arc<Mutex<HashMap<u64, Instant>>>,
    requests: Arc<Mutex<u64>>,
}

async fn receiver(status: u16) -> Receiver {
    let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let requests: Arc<Mutex<u64>> = Arc::default();
    let (seen, count) = (Arc::clone(&arrivals), Arc::clone(&requests));
    let handler = move |body: Bytes| {
        let (seen, count) = (Arc::clone(&seen), Arc::clone(&count));
        async move {
            let at = Instant::now();
            *count.lock().unwrap() += 1;
            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(n) = body["data"]["tag"]
                .as_str()
                .and_then(|t| t.strip_prefix("Probe: "))
                .and_then(|n| n.parse::<u64>().ok())
            {
                seen.lock().unwrap().entry(n).or_insert(at);
            }
            StatusCode::from_u16(status).unwrap()
        }
    };
    let router = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Receiver {
        url,
        arrivals,
        requests,
    }
}

async fn create_webhook(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    url: &str,
    tags: &[&str],
) -> String {
    let created = post(
        client,
        endpoint,
        key,
        json!({ "query": "mutation($input: WebhookInput!) { createWebhook(input: $input) { webhook { id } } }",
                "variables": { "input": { "url": url, "events": ["TAG_ADDED"], "tags": tags } } }),
    )
    .await;
    created["data"]["createWebhook"]["webhook"]["id"]
        .as_str()
        .expect("webhook id")
        .to_owned()
}

async fn delete_webhook(client: &reqwest::Client, endpoint: &str, key: &str, id: &str) {
    post(
        client,
        endpoint,
        key,
        json!({ "query": "mutation($id: ID!) { deleteWebhook(id: $id) }", "variables": { "id": id } }),
    )
    .await;
}

/// One timed phase: load clients tag random users, a probe every 10 ms
/// tags one with `Probe: N`; returns the probes' latencies (sent to
/// received) and how many other changes were made.
async fn phase(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
    live: &Receiver,
    first_probe: u64,
) -> (Vec<Duration>, u64) {
    let mut sent_at: HashMap<u64, Instant> = HashMap::new();
    let (_, background) = probes_under_load(
        client,
        endpoint,
        key,
        ids,
        args,
        (31, "Hook load"),
        first_probe,
        |n| format!("Probe: {n}"),
        |n| {
            sent_at.insert(n, Instant::now());
        },
    )
    .await;
    // Every probe arrives (the live receiver answers 200).
    let waited = Instant::now();
    while sent_at
        .keys()
        .any(|n| !live.arrivals.lock().unwrap().contains_key(n))
    {
        assert!(waited.elapsed() < Duration::from_secs(60), "probes lost");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let arrivals = live.arrivals.lock().unwrap();
    let latencies = sent_at
        .iter()
        .map(|(n, sent)| arrivals[n].duration_since(*sent))
        .collect();
    (latencies, background)
}

pub async fn webhook_latency(
    conn: &sea_orm::DatabaseConnection,
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Vec<Sample> {
    wait_drained(conn).await;
    let live = receiver(200).await;
    let live_id = create_webhook(client, endpoint, key, &live.url, &["Probe: *"]).await;
    let (latencies, background) = phase(client, endpoint, key, ids, args, &live, 0).await;
    let alone = Sample {
        name: format!(
            "webhooks: addTags sent to the webhook request received ({background} other tag changes meanwhile)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    };
    let dead = receiver(500).await;
    let dead_id = create_webhook(client, endpoint, key, &dead.url, &[]).await;
    let (latencies, background) = phase(client, endpoint, key, ids, args, &live, 1_000_000).await;
    let dead_requests = *dead.requests.lock().unwrap();
    let beside = Sample {
        name: format!(
            "webhooks: the same beside a dead endpoint (500 to all {background} changes; {dead_requests} requests it refused)"
        ),
        count: latencies.len(),
        elapsed: Duration::from_secs(args.seconds),
        latencies,
    };
    delete_webhook(client, endpoint, key, &live_id).await;
    delete_webhook(client, endpoint, key, &dead_id).await;
    wait_drained(conn).await;
    vec![alone, beside]
}

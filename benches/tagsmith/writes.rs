//! `add-tags`, `bulk-write`, `bulk-api` and `list-users`.

use std::time::{Duration, Instant};

use sea_orm::DatabaseConnection;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use serde_json::json;
use tagsmith::db;
use tagsmith::subjects::SubjectKind;
use tagsmith::tagging::assign::{Actor, apply_to_targets};
use tagsmith::tags::write::Target;
use tagsmith::tags::{Op, Source};

use crate::{
    Args,
    client::{ADD_TAGS, Sample, global_id, post},
};

/// `addTags` of one of 50 tags on a random user, from C clients for S seconds.
pub(crate) async fn add_tags(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
) -> Sample {
    add_tags_named(client, endpoint, key, ids, args, "Tag", 0).await
}

/// `addTags` of one of 50 tags (`{prefix} 0` to `{prefix} 49`) on a random
/// user, from C clients for S seconds. Runs with different `seed`s tag
/// different users (one with the same seed repeats the same no-op changes).
pub(crate) async fn add_tags_named(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
    args: &Args,
    prefix: &str,
    seed: u64,
) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers = (0..args.concurrency)
        .map(|worker| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            let ids = ids.to_vec();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n: u64 =
                    (worker as u64 * 7919).wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let id = ids[(n >> 33) as usize % ids.len()];
                    let body = json!({ "query": ADD_TAGS, "variables": {
                    "id": global_id("User", id), "tags": [format!("{prefix} {}", n % 50)] } });
                    let t = Instant::now();
                    post(&client, &endpoint, &key, body).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect::<Vec<_>>();
    Sample::of_clients("addTags on one user (HTTP)", started, workers).await
}

/// One tag to every user through the write path, with a query target.
pub(crate) async fn bulk_write_path(conn: &DatabaseConnection, users: usize) -> Sample {
    let all = Query::select()
        .column("id")
        .from("users")
        .and_where(Expr::col("workspace_id").eq(1))
        .to_owned();
    let started = Instant::now();
    let txn = db::begin_write(conn).await.expect("txn");
    let outcome = apply_to_targets(
        &txn,
        1,
        &[(SubjectKind::User, Target::Select(Box::new(all)))],
        &[
            tagsmith::tags::name::TagName::parse("Bulk Everyone", Default::default())
                .expect("a valid name"),
        ],
        Op::Added,
        Actor {
            source: Source::Bulk,
            name: Some("bench"),
            cause: tagsmith::tags::Cause::None,
            depth: 0,
        },
        &tagsmith::time::Clock::system(),
    )
    .await
    .expect("bulk");
    txn.commit().await.expect("commit");
    let elapsed = started.elapsed();
    assert_eq!(outcome.changed as usize, users);
    Sample {
        name: format!("bulk add 1 tag to {users} users (write path, one transaction)"),
        count: 1,
        elapsed,
        latencies: vec![elapsed],
    }
}

/// One tag to every user through `bulkAddTags`, 10,000 ids per call.
pub(crate) async fn bulk_api(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    ids: &[i64],
) -> Sample {
    let query = "mutation($ids: [ID!], $tags: [String!]!) { bulkAddTags(target: { ids: $ids }, tags: $tags) { matched changed } }";
    let started = Instant::now();
    let mut latencies = Vec::new();
    for chunk in ids.chunks(10_000) {
        let ids: Vec<String> = chunk.iter().map(|id| global_id("User", *id)).collect();
        let t = Instant::now();
        let body = post(
            client,
            endpoint,
            key,
            json!({ "query": query, "variables": { "ids": ids, "tags": ["Bulk API"] } }),
        )
        .await;
        latencies.push(t.elapsed());
        assert_eq!(body["data"]["bulkAddTags"]["changed"], chunk.len());
    }
    Sample {
        name: format!(
            "bulkAddTags to {} users (HTTP, 10,000 ids per call)",
            ids.len()
        ),
        count: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// `users(first: 50)` with tags and account, from C clients for S seconds.
pub(crate) async fn list_users(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    args: &Args,
) -> Sample {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let query = "{ users(first: 50) { nodes { id email tags { name } account { name } } } }";
    let started = Instant::now();
    let workers = (0..args.concurrency)
        .map(|_| {
            let client = client.clone();
            let endpoint = endpoint.to_owned();
            let key = key.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    post(&client, &endpoint, &key, json!({ "query": query })).await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect::<Vec<_>>();
    Sample::of_clients(
        "users(first: 50) with tags and account (HTTP)",
        started,
        workers,
    )
    .await
}

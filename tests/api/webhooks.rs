//! Webhooks through the real API, delivered to a receiver on 127.0.0.1
//! that records every request; signatures checked with the independent
//! `standardwebhooks` crate.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Settings, TestApp, drained, error_code, eventually};
use crate::on_both_databases;

/// A server that may reach 127.0.0.1 (the test's receiver) and retries
/// after 50 ms.
const RECEIVER: Settings = Settings {
    server: |_| {},
    automation: |automation| {
        automation.webhooks.webhook_allow_hosts = vec!["127.0.0.1".into()];
        automation.webhooks.webhook_retry_schedule = "50ms,50ms,50ms".into();
        // No test waits for a timeout: a hanging receiver stays in flight.
        automation.webhooks.webhook_timeout_ms = 60_000;
    },
};

on_both_databases!(
    settings = RECEIVER;
    a_matching_tag_change_is_delivered_signed,
    a_failed_attempt_is_retried_with_the_same_message_id,
    a_subjects_events_arrive_in_order,
    gone_disables_the_webhook,
    retry_after_is_honoured,
    a_rotation_signs_with_both_secrets,
    a_rolled_back_change_is_never_delivered,
    a_dead_endpoint_does_not_delay_another_webhook,
    redeliver_and_replay_send_again,
    segment_and_script_events_are_delivered,
    roles_and_workspaces,
);

/// What the receiver answers.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    RetryAfter(u16, &'static str),
    /// Never answers (until the test ends).
    Hang,
}

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// An HTTP server on 127.0.0.1 that records requests and answers the
/// queued replies in order, then `then` to every request.
#[derive(Clone)]
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(replies: Vec<Reply>, then: Reply) -> Receiver {
        let requests: Arc<Mutex<Vec<Received>>> = Arc::default();
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let recorded = Arc::clone(&requests);
        let handler = move |headers: HeaderMap, body: Bytes| {
            let recorded = Arc::clone(&recorded);
            let replies = Arc::clone(&replies);
            let then = then.clone();
            async move {
                recorded.lock().unwrap().push(Received {
                    headers,
                    body,
                    at: Instant::now(),
                });
                let reply = replies.lock().unwrap().pop_front().unwrap_or(then);
                let mut headers = HeaderMap::new();
                let status = match reply {
                    Reply::Status(code) => code,
                    Reply::RetryAfter(code, after) => {
                        headers.insert("retry-after", after.parse().unwrap());
                        code
                    }
                    Reply::Hang => {
                        std::future::pending::<()>().await;
                        500
                    }
                };
                (StatusCode::from_u16(status).unwrap(), headers, "answer")
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver { url, requests }
    }

    fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the receiver got {} requests, not {n}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Checks a request's signature with the `standardwebhooks` crate.
fn verify(secret: &str, request: &Received) -> Result<(), String> {
    standardwebhooks::Webhook::new(secret)
        .map_err(|e| e.to_string())?
        .verify(&request.body, &request.headers)
        .map_err(|e| e.to_string())
}

const CREATE: &str = "mutation($input: WebhookInput!) {
    createWebhook(input: $input) { secret webhook { id url events tags enabled description } } }";
const ADD: &str =
    "mutation($id: ID!, $tags: [String!]!) { addTags(subjectId: $id, tags: $tags) { __typename } }";
const DELIVERIES: &str = "query($id: ID!) { webhook(id: $id) { enabled deliveries(first: 50) {
    totalCount nodes { id messageId eventType payload status attempts lastStatusCode lastError
    nextAttemptAt createdAt deliveredAt webhook { id } } } } }";

/// Creates a webhook; returns (id, secret).
async fn create(app: &TestApp, input: Value) -> (String, String) {
    let data = app.ok(CREATE, json!({ "input": input })).await;
    let created = &data["createWebhook"];
    (
        created["webhook"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, id: &str) -> Value {
    app.ok(DELIVERIES, json!({ "id": id })).await["webhook"].clone()
}

/// Waits until the webhook's deliveries satisfy `done`.
async fn deliveries_when(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(app, DELIVERIES, json!({ "id": id }), |data| {
        done(&data["webhook"])
    })
    .await["webhook"]
        .clone()
}

fn statuses(webhook: &Value) -> Vec<&str> {
    webhook["deliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect()
}

async fn a_matching_tag_change_is_delivered_signed(app: TestApp) {
    let receiver = Receiver::start(vec![], Reply::Status(204)).await;
    let (id, secret) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"], "tags": ["VIP", "Region: *"],
                "description": "CRM sync" }),
    )
    .await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = app
        .ok(
            "{ webhooks { id url events tags enabled description } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["webhooks"],
        json!([{ "id": id, "url": receiver.url, "events": ["TAG_ADDED"],
                 "tags": ["VIP", "Region: *"], "enabled": true, "description": "CRM sync" }])
    );
    let user = app.user("ada@example.com").await;
    let sent = Instant::now();
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let received = receiver.wait_for(1).await;
    println!(
        "{}: tag change to webhook received: {:?}",
        app.database_url.split(':').next().unwrap_or_default(),
        received[0].at.duration_since(sent)
    );
    // Not asked for: another tag, and a removal.
    app.ok(ADD, json!({ "id": user, "tags": ["Other"] })).await;
    app.ok(
        "mutation($id: ID!) { removeTags(subjectId: $id, tags: [\"VIP\"]) { __typename } }",
        json!({ "id": user }),
    )
    .await;
    app.ok(ADD, json!({ "id": user, "tags": ["Region: North"] }))
        .await;
    let received = receiver.wait_for(2).await;
    drained(&app).await;

    let request = &received[0];
    verify(&secret, request).expect("the standardwebhooks crate accepts the signature");
    assert!(
        verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", request).is_err(),
        "another secret does not verify"
    );
    assert!(request.header("webhook-id").starts_with("msg_"));
    assert!(request.header("webhook-signature").starts_with("v1,"));
    assert_eq!(request.header("content-type"), "application/json");
    let body = request.json();
    assert_eq!(body["type"], "tag.added");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    let data = &body["data"];
    assert_eq!(data["tag"], "VIP");
    assert_eq!(
        data["subject"],
        json!({ "kind": "USER", "id": user, "email": "ada@example.com", "name": null, "externalId": null })
    );
    assert_eq!(data["source"], "MANUAL");
    assert_eq!(data["actor"], "admin");
    assert_eq!(data["cause"], Value::Null);
    assert_eq!(received[1].json()["data"]["tag"], "Region: North");

    let webhook = deliveries_when(&app, &id, |w| statuses(w) == ["SUCCEEDED", "SUCCEEDED"]).await;
    assert_eq!(
        webhook["deliveries"]["totalCount"], 2,
        "only the matching changes: {webhook:#}"
    );
    let delivery = &webhook["deliveries"]["nodes"][1];
    assert_eq!(delivery["eventType"], "tag.added");
    assert_eq!(delivery["messageId"], request.header("webhook-id"));
    assert_eq!(delivery["payload"], body);
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["lastStatusCode"], 204);
    assert_eq!(delivery["lastError"], Value::Null);
    assert_eq!(delivery["nextAttemptAt"], Value::Null);
    assert!(delivery["deliveredAt"].is_string());
    assert_eq!(delivery["webhook"]["id"], id);
    let node = app
        .ok(
            "query($id: ID!) { node(id: $id) { id ... on WebhookDelivery { status } } }",
            json!({ "id": delivery["id"] }),
        )
        .await;
    assert_eq!(node["node"]["status"], "SUCCEEDED");

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tagsmith_webhook_attempts_total{outcome=\"succeeded\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagsmith_webhook_pending_deliveries 0"),
        "{metrics}"
    );
}

async fn a_failed_attempt_is_retried_with_the_same_message_id(app: TestApp) {
    let receiver = Receiver::start(vec![Reply::Status(500)], Reply::Status(200)).await;
    let (id, secret) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let user = app.user("retry@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[0].header("webhook-id"),
        received[1].header("webhook-id")
    );
    assert_eq!(
        received[0].body, received[1].body,
        "the same body on every attempt"
    );
    for request in &received {
        verify(&secret, request).unwrap();
    }
    let webhook = deliveries_when(&app, &id, |w| statuses(w) == ["SUCCEEDED"]).await;
    let delivery = &webhook["deliveries"]["nodes"][0];
    assert_eq!(delivery["attempts"], 2);
    assert_eq!(delivery["lastStatusCode"], 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tagsmith_webhook_attempts_total{outcome=\"retried\"} 1"),
        "{metrics}"
    );
}

async fn a_subjects_events_arrive_in_order(app: TestApp) {
    // The first attempt fails: the subject's next event waits for its retry.
    let receiver = Receiver::start(vec![Reply::Status(500)], Reply::Status(200)).await;
    let other = Receiver::start(vec![], Reply::Status(200)).await;
    create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    create(&app, json!({ "url": other.url, "events": ["TAG_ADDED"] })).await;
    let user = app.user("order@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["First"] })).await;
    app.ok(ADD, json!({ "id": user, "tags": ["Second"] })).await;
    let received = receiver.wait_for(3).await;
    let tags: Vec<Value> = received
        .iter()
        .map(|r| r.json()["data"]["tag"].clone())
        .collect();
    assert_eq!(tags, ["First", "First", "Second"]);
    let tags: Vec<Value> = other
        .wait_for(2)
        .await
        .iter()
        .map(|r| r.json()["data"]["tag"].clone())
        .collect();
    assert_eq!(tags, ["First", "Second"], "each webhook in order");
}

async fn gone_disables_the_webhook(app: TestApp) {
    let receiver = Receiver::start(vec![Reply::Status(410)], Reply::Status(200)).await;
    let (id, _) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let user = app.user("gone@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    // (One request reads the webhook, then its deliveries: the attempt's
    // commit can fall between the two, so wait for both.)
    let webhook = deliveries_when(&app, &id, |w| {
        statuses(w) == ["FAILED"] && w["enabled"] == false
    })
    .await;
    let delivery = &webhook["deliveries"]["nodes"][0];
    assert_eq!(delivery["lastStatusCode"], 410);
    assert_eq!(delivery["attempts"], 1);
    // Disabled: later changes are not queued for it.
    app.ok(ADD, json!({ "id": user, "tags": ["VIP 2"] })).await;
    drained(&app).await;
    assert_eq!(deliveries(&app, &id).await["deliveries"]["totalCount"], 1);
    assert_eq!(receiver.received().len(), 1);
    let body = app
        .graphql(
            "mutation($id: ID!) { testWebhook(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
}

async fn retry_after_is_honoured(app: TestApp) {
    let receiver = Receiver::start(vec![Reply::RetryAfter(429, "3600")], Reply::Status(200)).await;
    let (id, _) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let user = app.user("busy@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let webhook =
        deliveries_when(&app, &id, |w| w["deliveries"]["nodes"][0]["attempts"] == 1).await;
    let delivery = &webhook["deliveries"]["nodes"][0];
    assert_eq!(delivery["status"], "PENDING");
    assert_eq!(delivery["lastStatusCode"], 429);
    let next: chrono::DateTime<chrono::Utc> =
        delivery["nextAttemptAt"].as_str().unwrap().parse().unwrap();
    let created: chrono::DateTime<chrono::Utc> =
        delivery["createdAt"].as_str().unwrap().parse().unwrap();
    // The schedule says 50 ms; the receiver asked for an hour.
    assert!(
        next - created > chrono::Duration::minutes(59),
        "next attempt at {next}, created at {created}"
    );
    assert_eq!(receiver.received().len(), 1);
    // /metrics reads the backlog: one delivery waits.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("tagsmith_webhook_pending_deliveries 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tagsmith_webhook_attempts_total{outcome=\"retried\"} 1"),
        "{metrics}"
    );
}

async fn a_rotation_signs_with_both_secrets(app: TestApp) {
    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    let (id, old) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let rotated = app
        .ok(
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }",
            json!({ "id": id }),
        )
        .await;
    let new = rotated["rotateWebhookSecret"]["secret"].as_str().unwrap();
    assert_ne!(new, old);
    let ping = app
        .ok(
            "mutation($id: ID!) { testWebhook(id: $id) { id eventType status messageId } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(ping["testWebhook"]["eventType"], "webhook.ping");
    let received = receiver.wait_for(1).await;
    let request = &received[0];
    assert_eq!(request.header("webhook-signature").split(' ').count(), 2);
    assert_eq!(
        request.header("webhook-id"),
        ping["testWebhook"]["messageId"]
    );
    verify(&old, request).expect("the old secret still verifies");
    verify(new, request).expect("the new secret verifies");
    assert_eq!(request.json()["type"], "webhook.ping");
    assert_eq!(request.json()["data"]["webhook"], id);
}

async fn a_rolled_back_change_is_never_delivered(app: TestApp) {
    use tagsmith::tagging::assign::{Actor, apply_to_targets};
    use tagsmith::tags::name::{TagName, TagRules};
    use tagsmith::tags::write::Target;
    use tagsmith::tags::{Cause, Op, Source};

    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    let (id, _) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let rolled_back = app.user("rolled-back@example.com").await;
    let committed = app.user("committed@example.com").await;
    let (_, user_id) = tagsmith::ids::decode(&async_graphql::ID(rolled_back.clone())).unwrap();
    let rules = TagRules {
        lowercase: false,
        max_depth: 3,
    };
    let txn = tagsmith::db::begin_write(&app.db).await.unwrap();
    let outcome = apply_to_targets(
        &txn,
        1,
        &[(
            tagsmith::subjects::SubjectKind::User,
            Target::Ids(vec![user_id]),
        )],
        &[TagName::parse("VIP", rules).unwrap()],
        Op::Added,
        Actor {
            source: Source::Manual,
            name: Some("test"),
            cause: Cause::None,
            depth: 0,
        },
        &tagsmith::time::Clock::system(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome.changed, 1,
        "the change was written, then rolled back"
    );
    drop(txn);
    app.ok(ADD, json!({ "id": committed, "tags": ["VIP"] }))
        .await;
    let received = receiver.wait_for(1).await;
    drained(&app).await;
    let webhook = deliveries_when(&app, &id, |w| statuses(w) == ["SUCCEEDED"]).await;
    assert_eq!(webhook["deliveries"]["totalCount"], 1);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["data"]["subject"]["id"], committed);
}

async fn a_dead_endpoint_does_not_delay_another_webhook(app: TestApp) {
    let dead = Receiver::start(vec![], Reply::Hang).await;
    let live = Receiver::start(vec![], Reply::Status(200)).await;
    create(&app, json!({ "url": dead.url, "events": ["TAG_ADDED"] })).await;
    let (live_id, _) = create(&app, json!({ "url": live.url, "events": ["TAG_ADDED"] })).await;
    let mut users = Vec::new();
    for n in 0..10 {
        users.push(app.user(&format!("u{n}@example.com")).await);
    }
    for user in &users {
        app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    }
    // Every delivery reaches the live receiver while the dead one holds
    // its first attempts open (it never answers).
    let received = live.wait_for(users.len()).await;
    assert_eq!(received.len(), users.len());
    let webhook = deliveries_when(&app, &live_id, |w| {
        statuses(w).iter().filter(|s| **s == "SUCCEEDED").count() == 10
    })
    .await;
    assert_eq!(webhook["deliveries"]["totalCount"], 10);
    let dead_attempts = dead.received().len();
    assert!(
        (1..=4).contains(&dead_attempts),
        "the dead endpoint holds at most its concurrency cap (4) in flight: {dead_attempts}"
    );
}

async fn redeliver_and_replay_send_again(app: TestApp) {
    // Three failures use the whole schedule (three retries); then success.
    let receiver = Receiver::start(vec![Reply::Status(500); 4], Reply::Status(200)).await;
    let (id, _) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let user = app.user("replay@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let webhook = deliveries_when(&app, &id, |w| statuses(w) == ["FAILED"]).await;
    let failed = webhook["deliveries"]["nodes"][0].clone();
    assert_eq!(failed["attempts"], 4);
    assert_eq!(failed["lastStatusCode"], 500);
    assert_eq!(failed["lastError"], "HTTP 500: answer");
    let replayed = app
        .ok(
            "mutation($id: ID!, $since: DateTime!) { replayWebhook(id: $id, since: $since) }",
            json!({ "id": id, "since": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(replayed["replayWebhook"], 1);
    let webhook = deliveries_when(&app, &id, |w| statuses(w) == ["SUCCEEDED"]).await;
    assert_eq!(webhook["deliveries"]["nodes"][0]["attempts"], 5);
    // Nothing failed since then: nothing to replay.
    let again = app
        .ok(
            "mutation($id: ID!, $since: DateTime!) { replayWebhook(id: $id, since: $since) }",
            json!({ "id": id, "since": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(again["replayWebhook"], 0);
    // A succeeded delivery sent again on demand, with its message id.
    let redelivered = app
        .ok(
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status messageId } }",
            json!({ "id": failed["id"] }),
        )
        .await;
    assert_eq!(redelivered["redeliverWebhook"]["status"], "PENDING");
    let received = receiver.wait_for(6).await;
    assert!(
        received
            .iter()
            .all(|r| r.header("webhook-id") == failed["messageId"])
    );
    deliveries_when(&app, &id, |w| {
        statuses(w) == ["SUCCEEDED"] && w["deliveries"]["nodes"][0]["attempts"] == 6
    })
    .await;
    let failed_only = app
        .ok(
            "query($id: ID!) { webhook(id: $id) { deliveries(status: FAILED) { totalCount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(failed_only["webhook"]["deliveries"]["totalCount"], 0);
}

async fn segment_and_script_events_are_delivered(app: TestApp) {
    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    create(
        &app,
        json!({ "url": receiver.url, "events": ["SEGMENT_ENTERED", "SCRIPT_FAILED"] }),
    )
    .await;
    app.ok(
        "mutation($input: SegmentInput!) { createSegment(input: $input) { id } }",
        json!({ "input": { "name": "VIPs", "subjectKind": "USER", "filter": "tagged(\"VIP\")",
                           "onEntry": { "add": ["Welcomed"] } } }),
    )
    .await;
    app.ok(
        "mutation($input: ScriptInput!) { uploadScript(input: $input) { id } }",
        json!({ "input": { "name": "breaks", "source": "fn on_tag_added(e) { if e.tag == \"Welcomed\" { throw \"boom\"; } }" } }),
    )
    .await;
    let user = app.user("seg@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let received = receiver.wait_for(2).await;
    drained(&app).await;
    let mut types: Vec<String> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["script.failed", "segment.entered"]);
    for request in &received {
        let body = request.json();
        assert_eq!(body["data"]["subject"]["id"], user);
        match body["type"].as_str().unwrap() {
            "segment.entered" => assert_eq!(body["data"]["segment"]["name"], "VIPs"),
            _ => {
                assert_eq!(body["data"]["script"]["name"], "breaks");
                assert!(
                    body["data"]["error"].as_str().unwrap().contains("boom"),
                    "{body}"
                );
                assert_eq!(body["data"]["event"], "tag.added");
                assert_eq!(body["data"]["tag"], "Welcomed");
            }
        }
    }
}

async fn roles_and_workspaces(app: TestApp) {
    // Refused before anything is sent or stored.
    for url in [
        "http://10.1.2.3/",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data",
        "http://hooks.example.com/in",
        "https://localhost/in",
        "ftp://127.0.0.1/",
    ] {
        let body = app
            .graphql(
                CREATE,
                json!({ "input": { "url": url, "events": ["TAG_ADDED"] } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{url}: {body}");
    }
    for tags in [json!(["sp*rts"]), json!([""]), json!(["*"])] {
        let body = app
            .graphql(
                CREATE,
                json!({ "input": { "url": "http://127.0.0.1:9/", "events": ["TAG_ADDED"], "tags": tags } }),
            )
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{tags}: {body}");
    }
    let body = app
        .graphql(
            CREATE,
            json!({ "input": { "url": "http://127.0.0.1:9/", "events": [] } }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(app.rows("webhooks").await, 0);

    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    let (id, _) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let user = app.user("mine@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    receiver.wait_for(1).await;
    let delivery_id =
        deliveries_when(&app, &id, |w| statuses(w) == ["SUCCEEDED"]).await["deliveries"]["nodes"]
            [0]["id"]
            .clone();

    // Not ADMIN: FORBIDDEN.
    let developer = app.key("dev", "DEVELOPER").await;
    for (query, vars) in [
        ("{ webhooks { id } }", json!({})),
        (
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": id }),
        ),
        (
            CREATE,
            json!({ "input": { "url": receiver.url, "events": ["TAG_ADDED"] } }),
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { testWebhook(id: $id) { id } }",
            json!({ "id": id }),
        ),
    ] {
        let body = app.graphql_as(Some(&developer), query, vars).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
    }

    // Another workspace sees none of it.
    let other = app.other_workspace("other").await;
    let listed = app
        .graphql_as(Some(&other), "{ webhooks { id } }", json!({}))
        .await;
    assert_eq!(listed["data"]["webhooks"], json!([]), "{listed}");
    let found = app
        .graphql_as(
            Some(&other),
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(found["data"]["webhook"], Value::Null, "{found}");
    let node = app
        .graphql_as(
            Some(&other),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": delivery_id }),
        )
        .await;
    assert_eq!(node["data"]["node"], Value::Null, "{node}");
    for (query, vars) in [
        (
            "mutation($id: ID!, $input: WebhookInput!) { updateWebhook(id: $id, input: $input) { id } }",
            json!({ "id": id, "input": { "url": receiver.url, "events": ["TAG_REMOVED"] } }),
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { testWebhook(id: $id) { id } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }",
            json!({ "id": delivery_id }),
        ),
        (
            "mutation($id: ID!) { replayWebhook(id: $id, since: \"2020-01-01T00:00:00Z\") }",
            json!({ "id": id }),
        ),
    ] {
        let body = app.graphql_as(Some(&other), query, vars).await;
        assert_eq!(error_code(&body), "NOT_FOUND", "{query}: {body}");
    }
    // The other workspace's changes are not delivered to this webhook.
    let theirs = app
        .graphql_as(
            Some(&other),
            "mutation { upsertUser(input: { email: \"theirs@example.com\" }) { id } }",
            json!({}),
        )
        .await["data"]["upsertUser"]["id"]
        .clone();
    let added = app
        .graphql_as(Some(&other), ADD, json!({ "id": theirs, "tags": ["VIP"] }))
        .await;
    assert!(added["errors"].is_null(), "{added}");
    drained(&app).await;
    assert_eq!(deliveries(&app, &id).await["deliveries"]["totalCount"], 1);

    // Updating and deleting in its own workspace.
    let updated = app
        .ok(
            "mutation($id: ID!, $input: WebhookInput!) { updateWebhook(id: $id, input: $input) { events tags enabled } }",
            json!({ "id": id, "input": { "url": receiver.url, "events": ["TAG_REMOVED", "TAG_ADDED"], "tags": ["sports/*"], "enabled": false } }),
        )
        .await;
    assert_eq!(
        updated["updateWebhook"],
        json!({ "events": ["TAG_ADDED", "TAG_REMOVED"], "tags": ["sports/*"], "enabled": false })
    );
    let deleted = app
        .ok(
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteWebhook"], true);
    assert_eq!(app.rows("webhook_deliveries").await, 0);
    let again = app
        .graphql(
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&again), "NOT_FOUND");
}

/// The server runs no worker; webhooks may reach the test's receivers.
const RECEIVER_NO_WORKER: Settings = Settings {
    server: |_| {},
    automation: |automation| {
        automation.no_worker = true;
        automation.webhooks.webhook_allow_hosts = vec!["127.0.0.1".into()];
    },
};
on_both_databases!(settings = RECEIVER_NO_WORKER; a_standalone_worker_delivers);

/// A standalone `tagsmith worker` (the server runs none) delivers too:
/// its own changes' deliveries, and a ping queued through the server's API.
async fn a_standalone_worker_delivers(app: TestApp) {
    let receiver = Receiver::start(vec![], Reply::Status(200)).await;
    let (id, secret) = create(
        &app,
        json!({ "url": receiver.url, "events": ["TAG_ADDED"] }),
    )
    .await;
    let user = app.user("worker@example.com").await;
    app.ok(ADD, json!({ "id": user, "tags": ["VIP"] })).await;
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_tagsmith"))
        .args(["worker", "--database-url", &app.database_url])
        .args(["--webhook-allow-hosts", "127.0.0.1"])
        .env("TAGSMITH_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tagsmith worker");
    let received = receiver.wait_for(1).await;
    verify(&secret, &received[0]).unwrap();
    assert_eq!(received[0].json()["data"]["subject"]["id"], user);
    app.ok(
        "mutation($id: ID!) { testWebhook(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    let received = receiver.wait_for(2).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    assert_eq!(received[1].json()["type"], "webhook.ping");
}

//! Subscriptions over graphql-transport-ws: every committed change of the
//! key's workspace, including the ones scripts make.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::TestApp;
use crate::on_both_databases;

on_both_databases!(
    tag_changes_reach_subscribers_of_their_workspace_only,
    websocket_operations_meet_the_request_checks,
    a_revoked_key_closes_its_connections_on_every_server
);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, key: &str) -> Socket {
    connect_to(&app.address, key).await
}

/// A graphql-transport-ws connection to the server at `address`, not yet initialized.
async fn open(address: &str) -> Socket {
    let url = format!("{}/graphql", address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    socket
}

async fn connect_to(address: &str, key: &str) -> Socket {
    let mut socket = open(address).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } })).await;
    let ack = next(&mut socket)
        .await
        .expect("an answer to connection_init");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next JSON message, or None after 10 s of silence.
async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str, arguments: &str) {
    let query = format!(
        "subscription {{ tagChanges{arguments} {{ op tag {{ name }} source actor subject {{ ... on User {{ email }} }} }} }}"
    );
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
}

async fn tag_changes_reach_subscribers_of_their_workspace_only(app: TestApp) {
    let mut all = connect(&app, &app.admin_key).await;
    subscribe(&mut all, "1", "").await;
    let mut vip_only = connect(&app, &app.admin_key).await;
    subscribe(&mut vip_only, "2", "(tag: \"VIP\", subjectKind: USER)").await;
    let other = app.other_workspace("other").await;
    let mut outsider = connect(&app, &other).await;
    subscribe(&mut outsider, "3", "").await;
    // Let the subscriptions start before changing anything.
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.ok(
        "mutation { uploadScript(input: { name: \"promote\", source: \"fn on_tag_added(e) { if e.tag == \\\"Paid\\\" { e.subject.add_tag(\\\"VIP\\\"); } }\" }) { id } }",
        json!({}),
    )
    .await;
    let ana = app.user("ana@example.com").await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"Paid\"]) { __typename } }",
        json!({ "id": ana }),
    )
    .await;

    let first = next(&mut all).await.expect("the manual change");
    assert_eq!(first["type"], "next");
    assert_eq!(first["id"], "1");
    assert_eq!(
        first["payload"]["data"]["tagChanges"],
        json!({ "op": "ADDED", "tag": { "name": "Paid" }, "source": "MANUAL", "actor": "admin", "subject": { "email": "ana@example.com" } })
    );
    let second = next(&mut all).await.expect("the script's change");
    assert_eq!(second["payload"]["data"]["tagChanges"]["source"], "SCRIPT");
    assert_eq!(second["payload"]["data"]["tagChanges"]["actor"], "promote");
    let only = next(&mut vip_only).await.expect("the VIP change");
    assert_eq!(
        only["payload"]["data"]["tagChanges"]["tag"]["name"], "VIP",
        "{only}"
    );

    // The other workspace hears nothing.
    let heard = tokio::time::timeout(Duration::from_millis(500), outsider.next()).await;
    assert!(heard.is_err(), "the outsider heard {heard:?}");

    // A bad key is refused at connection_init.
    let mut socket = open(&app.address).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "Authorization": "Bearer tsk_nope" } }),
    )
    .await;
    assert!(
        next(&mut socket)
            .await
            .is_none_or(|m| m["type"] != "connection_ack")
    );
}

/// The checks HTTP requests get before execution (the token cap, no NUL
/// character) hold for operations sent over a WebSocket too; every error
/// there carries its code, as over HTTP, and `/metrics` counts it.
async fn websocket_operations_meet_the_request_checks(app: TestApp) {
    let before = error_counts(&app).await;
    let mut socket = connect(&app, &app.admin_key).await;
    let aliases: String = (0..6_000).map(|i| format!("a{i}: op ")).collect();
    let huge = format!("subscription {{ tagChanges {{ {aliases} }} }}");
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": { "query": huge } }),
    )
    .await;
    let refused = next(&mut socket).await.expect("an answer");
    assert_eq!(refused["id"], "1", "{refused}");
    assert_eq!(error_code(&refused), Some("LIMIT_EXCEEDED"), "{refused}");
    let ended = next(&mut socket).await.expect("the end of operation 1");
    assert_eq!(
        (&ended["id"], &ended["type"]),
        (&json!("1"), &json!("complete"))
    );

    send(
        &mut socket,
        json!({ "id": "2", "type": "subscribe", "payload": {
            "query": "subscription($tag: String) { tagChanges(tag: $tag) { op } }",
            "variables": { "tag": "a\u{0}b" } } }),
    )
    .await;
    let refused = next(&mut socket).await.expect("an answer");
    assert_eq!(refused["id"], "2", "{refused}");
    assert_eq!(error_code(&refused), Some("BAD_USER_INPUT"), "{refused}");
    let ended = next(&mut socket).await.expect("the end of operation 2");
    assert_eq!(ended["type"], "complete", "{ended}");

    // Validation and resolver errors: codes added as over HTTP.
    for (id, query, code) in [
        (
            "3",
            "subscription { tagChanges { nope } }",
            "BAD_USER_INPUT",
        ),
        (
            "4",
            "{ tags(search: 5) { nodes { id } } }",
            "BAD_USER_INPUT",
        ),
        (
            "5",
            "{ users(first: 500) { nodes { id } } }",
            "LIMIT_EXCEEDED",
        ),
    ] {
        send(
            &mut socket,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
        let refused = next(&mut socket).await.expect("an answer");
        assert_eq!(refused["id"], id, "{refused}");
        assert_eq!(error_code(&refused), Some(code), "{query}: {refused}");
        let ended = next(&mut socket).await.expect("the end of the operation");
        assert_eq!(ended["type"], "complete", "{ended}");
    }
    let after = error_counts(&app).await;
    let rise = |code: &str| {
        after.get(code).copied().unwrap_or(0.0) - before.get(code).copied().unwrap_or(0.0)
    };
    assert_eq!(rise("LIMIT_EXCEEDED"), 2.0, "{after:?}");
    assert_eq!(rise("BAD_USER_INPUT"), 3.0, "{after:?}");
    assert_eq!(rise("INTERNAL"), 0.0, "{after:?}");
}

/// `tagsmith_graphql_errors_total` by code, from `/metrics`.
async fn error_counts(app: &TestApp) -> std::collections::HashMap<String, f64> {
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("tagsmith_graphql_errors_total{code=\"")?;
            let (code, value) = rest.split_once("\"} ")?;
            Some((code.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The code of the first error a message carries: an operation refused
/// before it runs comes as `next` with `errors` (as async-graphql-axum sends
/// an execution's errors), one refused by validation as `error`.
fn error_code(message: &Value) -> Option<&str> {
    let errors = match message["type"].as_str()? {
        "error" => &message["payload"],
        "next" => &message["payload"]["errors"],
        _ => return None,
    };
    errors[0]["extensions"]["code"].as_str()
}

/// How the server ended the connection: the close code, or None when it
/// said nothing for 10 s (or sent something else first: returned as Err).
async fn close_code(socket: &mut Socket) -> Result<Option<u16>, Value> {
    loop {
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(10), socket.next()).await
        else {
            return Ok(None);
        };
        match message {
            Message::Close(frame) => return Ok(frame.map(|f| u16::from(f.code))),
            Message::Text(text) => {
                return Err(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
            _ => continue,
        }
    }
}

/// A second server on the same database, as behind a load balancer.
async fn second_server(app: &TestApp) -> String {
    let state = tagsmith::app::AppState::new(
        app.db.clone(),
        tagsmith::config::AutomationSettings::default().script_limits(),
    );
    let settings = tagsmith::config::ServerSettings {
        bind: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let running = tagsmith::server::start(state, settings, std::future::pending())
        .await
        .expect("a second server");
    format!("http://{}", running.addr)
}

/// Revoking a key closes, with 4403, the connections it opened on this
/// server and on another one sharing the database, subscriptions and
/// all; an operation sent after the revocation never runs.
async fn a_revoked_key_closes_its_connections_on_every_server(app: TestApp) {
    let key = app.key("watcher", "VIEWER").await;
    let other = second_server(&app).await;
    let mut here = connect(&app, &key).await;
    let mut there = connect_to(&other, &key).await;
    let mut idle = connect_to(&other, &key).await;
    subscribe(&mut here, "1", "").await;
    subscribe(&mut there, "1", "").await;
    // On SQLite a server follows the others' changes from its next poll (50 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let user = app.user("seen@example.com").await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"A\"]) { __typename } }",
        json!({ "id": user }),
    )
    .await;
    for socket in [&mut here, &mut there] {
        let change = next(socket).await.expect("a change");
        assert_eq!(
            change["payload"]["data"]["tagChanges"]["tag"]["name"], "A",
            "{change}"
        );
    }

    let revoked_at = std::time::Instant::now();
    app.ok("mutation { revokeApiKey(name: \"watcher\") }", json!({}))
        .await;
    // An operation sent at once, before any poll: refused, the data never sent.
    send(
        &mut idle,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ users { nodes { email } } }" } }),
    )
    .await;
    assert_eq!(close_code(&mut idle).await, Ok(Some(4403)));
    for socket in [&mut here, &mut there] {
        assert_eq!(close_code(socket).await, Ok(Some(4403)));
    }
    let took = revoked_at.elapsed();
    println!("revoked key: connections on both servers closed in {took:?}");
    assert!(took < Duration::from_secs(5), "closing took {took:?}");
    // The key cannot open a new one either.
    let mut socket = open(&app.address).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } })).await;
    assert!(
        matches!(close_code(&mut socket).await, Ok(Some(code)) if code != 4403),
        "a revoked key was acknowledged"
    );
}

/// A value of `/metrics`.
async fn gauge(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} "))?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Subscriptions are capped per connection and per key (the refused one
/// gets LIMIT_EXCEEDED and the connection goes on), a duplicate id closes
/// the connection with 4409, and closed connections free their
/// subscriptions: the streams alive go back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_and_freed() {
    let app = TestApp::builder()
        .server(|s| {
            s.max_subscriptions_per_connection = 3;
            s.max_subscriptions_per_key = 4;
        })
        .spawn_sqlite()
        .await;
    let key = app.key("many", "VIEWER").await;
    let mut first = connect(&app, &key).await;
    for id in ["1", "2", "3"] {
        subscribe(&mut first, id, "").await;
    }
    subscribe(&mut first, "4", "").await;
    let refused = next(&mut first).await.expect("a refusal");
    assert_eq!(refused["id"], "4", "{refused}");
    assert_eq!(error_code(&refused), Some("LIMIT_EXCEEDED"), "{refused}");
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3"),
        "{refused}"
    );
    // Completing one makes room.
    send(&mut first, json!({ "id": "3", "type": "complete" })).await;
    subscribe(&mut first, "4", "").await;

    let mut second = connect(&app, &key).await;
    subscribe(&mut second, "a", "").await;
    subscribe(&mut second, "b", "").await;
    let refused = next(&mut second).await.expect("a refusal");
    assert_eq!(refused["id"], "b", "{refused}");
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("API key runs at most 4"),
        "{refused}"
    );
    // The connections still serve their subscriptions.
    let user = app.user("capped@example.com").await;
    app.ok(
        "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"B\"]) { __typename } }",
        json!({ "id": user }),
    )
    .await;
    let change = next(&mut second).await.expect("a change");
    assert_eq!(change["id"], "a", "{change}");
    assert_eq!(gauge(&app, "tagsmith_subscription_streams").await, 4.0);
    assert_eq!(gauge(&app, "tagsmith_websocket_operations").await, 4.0);

    // The same id twice: 4409.
    subscribe(&mut second, "a", "").await;
    assert_eq!(close_code(&mut second).await, Ok(Some(4409)));

    // Many connections opened and closed: nothing stays behind.
    let other = app.key("churn", "VIEWER").await;
    for _ in 0..20 {
        let mut socket = connect(&app, &other).await;
        for id in ["x", "y", "z"] {
            subscribe(&mut socket, id, "").await;
        }
        socket.close(None).await.unwrap();
    }
    drop(first);
    let started = std::time::Instant::now();
    loop {
        let streams = gauge(&app, "tagsmith_subscription_streams").await;
        let operations = gauge(&app, "tagsmith_websocket_operations").await;
        let connections = gauge(&app, "tagsmith_websocket_connections").await;
        if (streams, operations, connections) == (0.0, 0.0, 0.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still held: {streams} streams, {operations} operations, {connections} connections"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Over graphql-transport-ws too, a result keeps the selection's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_results_keep_the_selection_order() {
    let app = TestApp::builder().spawn_sqlite().await;
    app.user("ordered@example.com").await;
    let mut socket = connect(&app, &app.admin_key).await;
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "{ viewer { role } users { totalCount nodes { id email } } __typename }" } }),
    )
    .await;
    let text = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => break text.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no answer: {other:?}"),
        }
    };
    let at = |name: &str| {
        text.find(&format!("\"{name}\""))
            .unwrap_or_else(|| panic!("{name}: {text}"))
    };
    assert!(
        at("viewer") < at("users") && at("users") < at("__typename"),
        "{text}"
    );
    assert!(
        at("totalCount") < at("nodes") && at("id") < at("email"),
        "{text}"
    );
}

#[tokio::test]
async fn subscription_events_keep_the_selection_order() {
    let app = TestApp::builder().spawn_sqlite().await;
    let ana = app.user("ordered@example.com").await;
    let mut socket = connect(&app, &app.admin_key).await;
    // Reverse alphabetical at each level, with a field that loads (subject).
    send(
        &mut socket,
        json!({ "id": "1", "type": "subscribe", "payload": {
            "query": "subscription { tagChanges { tag { name id } subject { ... on User { tags { name } email id } } source op } }" } }),
    )
    .await;
    // The subscription is registered once a first change reaches it; retry until it does.
    let text = loop {
        app.ok(
            "mutation($id: ID!) { addTags(subjectId: $id, tags: [\"Ordered\"]) { __typename } }",
            json!({ "id": ana }),
        )
        .await;
        app.ok(
            "mutation($id: ID!) { removeTags(subjectId: $id, tags: [\"Ordered\"]) { __typename } }",
            json!({ "id": ana }),
        )
        .await;
        match tokio::time::timeout(Duration::from_secs(2), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => break text.to_string(),
            Ok(Some(Ok(_))) | Err(_) => continue,
            other => panic!("no event: {other:?}"),
        }
    };
    let at = |name: &str| {
        text.find(&format!("\"{name}\""))
            .unwrap_or_else(|| panic!("{name}: {text}"))
    };
    assert!(
        at("tag") < at("subject") && at("subject") < at("source") && at("source") < at("op"),
        "{text}"
    );
    let tag = &text[at("tag")..at("subject")];
    assert!(tag.find("\"name\"") < tag.find("\"id\""), "{text}");
    // `tags` loads (a DataLoader) while `email` and `id` are at hand: they
    // finish first, yet come after it.
    let subject = &text[at("subject")..at("source")];
    let (tags, email, id) = (
        subject.find("\"tags\""),
        subject.find("\"email\""),
        subject.find("\"id\""),
    );
    assert!(tags.is_some() && tags < email && email < id, "{text}");
}

//! GraphQL over WebSocket (graphql-transport-ws, and the older graphql-ws)
//! at `/graphql`, with a guard in front of async-graphql's protocol:
//!
//! - the key sent in `connection_init` is checked again for every
//!   operation the connection starts, and every open connection is closed
//!   with 4403 within a second of its key being revoked, on any server
//!   sharing the database ([`Sockets::watch`] reads the keys of the open
//!   connections every [`REVOCATION_POLL`]);
//! - operations are capped per connection and per key, and a second
//!   `subscribe` with an id still in use closes the connection with 4409,
//!   as graphql-transport-ws says;
//! - a message is at most the request body limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::auth::{Caller, keys};
use crate::error::Code;
use crate::metrics::Metrics;

use super::context::RequestAuth;
use super::http::{HttpState, request_error};
use super::loaders::Loaders;

/// The refusal of a `connection_init` without a key.
const NO_KEY: &str = "send the API key in connection_init: {\"Authorization\": \"Bearer <key>\"}";

/// How often the keys of open connections are read again.
pub const REVOCATION_POLL: Duration = Duration::from_millis(500);

/// The close code of a connection whose key was revoked.
const CLOSE_REVOKED: u16 = 4403;
/// The close code of a `subscribe` whose id is already in use.
const CLOSE_DUPLICATE: u16 = 4409;

/// How many operations a connection and a key may run at once.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub per_connection: usize,
    pub per_key: usize,
}

/// The open connections of this server, by key.
pub struct Sockets {
    caps: Caps,
    metrics: Arc<Metrics>,
    keys: Mutex<HashMap<i64, KeyEntry>>,
}

struct KeyEntry {
    connections: usize,
    operations: usize,
    revoked: watch::Sender<bool>,
}

impl Sockets {
    /// The registry, and the task that watches its keys (it ends when the
    /// registry is dropped).
    pub fn start(db: sea_orm::DatabaseConnection, caps: Caps, metrics: Arc<Metrics>) -> Arc<Self> {
        let sockets = Arc::new(Sockets {
            caps,
            metrics,
            keys: Mutex::default(),
        });
        tokio::spawn(Self::watch(Arc::downgrade(&sockets), db));
        sockets
    }

    /// Every [`REVOCATION_POLL`], marks revoked the keys of open
    /// connections that are revoked or gone from the database.
    async fn watch(sockets: Weak<Sockets>, db: sea_orm::DatabaseConnection) {
        let mut tick = tokio::time::interval(REVOCATION_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(sockets) = sockets.upgrade() else {
                return;
            };
            let open: Vec<i64> = match sockets.keys.lock() {
                Ok(keys) => keys.keys().copied().collect(),
                Err(_) => return,
            };
            if open.is_empty() {
                continue;
            }
            let active = match keys::active_among(&db, &open).await {
                Ok(active) => active,
                Err(e) => {
                    tracing::warn!(error = %e, "could not check the keys of open WebSockets");
                    continue;
                }
            };
            if let Ok(keys) = sockets.keys.lock() {
                for (id, entry) in keys.iter() {
                    if !active.contains(id) {
                        entry.revoked.send_replace(true);
                    }
                }
            }
        }
    }

    /// Counts a connection of `key_id`; the registration ends when dropped.
    fn register(self: &Arc<Self>, key_id: i64) -> Registration {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let entry = keys.entry(key_id).or_insert_with(|| KeyEntry {
            connections: 0,
            operations: 0,
            revoked: watch::channel(false).0,
        });
        entry.connections += 1;
        self.metrics.websocket_connections(1);
        Registration {
            sockets: Arc::clone(self),
            key_id,
            revoked: entry.revoked.subscribe(),
            operations: HashSet::new(),
        }
    }
}

/// One connection's key and its running operations.
struct Registration {
    sockets: Arc<Sockets>,
    key_id: i64,
    revoked: watch::Receiver<bool>,
    operations: HashSet<String>,
}

/// Why an operation may not start.
enum Refusal {
    Duplicate,
    Capped(String),
}

impl Registration {
    fn start(&mut self, id: &str) -> Result<(), Refusal> {
        if self.operations.contains(id) {
            return Err(Refusal::Duplicate);
        }
        let caps = self.sockets.caps;
        if self.operations.len() >= caps.per_connection {
            return Err(Refusal::Capped(format!(
                "a connection runs at most {} operations at once",
                caps.per_connection
            )));
        }
        let mut keys = self.sockets.keys.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = keys.get_mut(&self.key_id) else {
            return Err(Refusal::Capped("the connection is closing".into()));
        };
        if entry.operations >= caps.per_key {
            return Err(Refusal::Capped(format!(
                "an API key runs at most {} operations at once on this server",
                caps.per_key
            )));
        }
        entry.operations += 1;
        self.operations.insert(id.to_owned());
        self.sockets.metrics.websocket_operations(1);
        Ok(())
    }

    fn finish(&mut self, id: &str) {
        if self.operations.remove(id) {
            let mut keys = self.sockets.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = keys.get_mut(&self.key_id) {
                entry.operations = entry.operations.saturating_sub(1);
            }
            self.sockets.metrics.websocket_operations(-1);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let running = self.operations.len();
        let mut keys = self.sockets.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = keys.get_mut(&self.key_id) {
            entry.connections = entry.connections.saturating_sub(1);
            entry.operations = entry.operations.saturating_sub(running);
            if entry.connections == 0 {
                keys.remove(&self.key_id);
            }
        }
        self.sockets.metrics.websocket_connections(-1);
        self.sockets.metrics.websocket_operations(-(running as i64));
    }
}

/// Serves GraphQL on a WebSocket; the key comes in `connection_init`.
pub async fn upgrade(state: HttpState, parts: &mut axum::http::request::Parts) -> Response {
    use axum::extract::FromRequestParts;

    let protocol = match GraphQLProtocol::from_request_parts(parts, &()).await {
        Ok(protocol) => protocol,
        Err(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                "ask for the graphql-transport-ws (or graphql-ws) subprotocol",
            );
        }
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return request_error(
                rejection.status(),
                Code::BadUserInput,
                rejection.body_text(),
            );
        }
    };
    // The same choice as GraphQLProtocol's: the first protocol named that
    // async-graphql speaks; "graphql-ws" is the older protocol.
    let legacy = parts
        .headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| *p == "graphql-transport-ws" || *p == "graphql-ws")
        == Some("graphql-ws");
    let max = state.settings.max_body_bytes;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| serve(state, socket, protocol, legacy))
}

/// The state of one connection, shared by its guard (client to server)
/// and its sender (server to client).
struct Connection {
    sink: tokio::sync::Mutex<SplitSink<WebSocket, Message>>,
    registration: Mutex<Option<Registration>>,
    /// The caller the guard authenticated from `connection_init` (or why
    /// it could not), for async-graphql's `on_connection_init`.
    caller: Mutex<Option<Result<Caller, &'static str>>>,
    legacy: bool,
}

impl Connection {
    async fn send(&self, message: Message) -> bool {
        self.sink.lock().await.send(message).await.is_ok()
    }

    async fn close(&self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = self.send(Message::Close(Some(frame))).await;
    }

    fn registration(&self) -> std::sync::MutexGuard<'_, Option<Registration>> {
        self.registration.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error message for operation `id`, which does not run.
    fn refusal(&self, id: &str, code: Code, message: &str) -> Message {
        let error = json!({ "message": message, "extensions": { "code": code.as_str() } });
        let payload = if self.legacy { error } else { json!([error]) };
        Message::Text(
            json!({ "id": id, "type": "error", "payload": payload })
                .to_string()
                .into(),
        )
    }
}

/// What the guard does with a message from the client.
enum Verdict {
    Pass,
    /// Answer this instead of running the message.
    Answer(Message),
    Close(u16, String),
}

async fn serve(state: HttpState, socket: WebSocket, protocol: GraphQLProtocol, legacy: bool) {
    let (sink, stream) = socket.split();
    let connection = Arc::new(Connection {
        sink: tokio::sync::Mutex::new(sink),
        registration: Mutex::default(),
        caller: Mutex::default(),
        legacy,
    });
    let input = guarded(state.clone(), Arc::clone(&connection), stream);
    let output = futures_util::sink::unfold(
        Arc::clone(&connection),
        |connection: Arc<Connection>, message: Message| async move {
            if let Message::Text(text) = &message {
                finished_operation(&connection, text);
            }
            if connection.send(message).await {
                Ok(connection)
            } else {
                Err(axum::Error::new("the client went away"))
            }
        },
    );
    let init = Arc::clone(&connection);
    let app = state.app.clone();
    GraphQLWebSocket::new_with_pair(output, input, state.websocket_schema.clone(), protocol)
        .on_connection_init(move |_payload| async move {
            let caller = init
                .caller
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or(Err(NO_KEY))
                .map_err(async_graphql::Error::new)?;
            let mut data = async_graphql::Data::default();
            data.insert(Loaders::new(
                &app.db,
                caller.workspace_id,
                &app.clock,
                &app.scripts,
            ));
            data.insert(RequestAuth::Key(caller));
            Ok(data)
        })
        .serve()
        .await;
    // Dropping the connection ends its registration.
    connection.registration().take();
}

/// The client's messages, each checked before async-graphql sees it; ends
/// (after closing the socket) when the connection's key is revoked.
fn guarded(
    state: HttpState,
    connection: Arc<Connection>,
    stream: SplitStream<WebSocket>,
) -> impl futures_util::Stream<Item = Result<Message, axum::Error>> + Send {
    futures_util::stream::unfold(
        (state, connection, stream),
        |(state, connection, mut stream)| async move {
            loop {
                let revoked = connection
                    .registration()
                    .as_ref()
                    .map(|r| r.revoked.clone());
                let message = match revoked {
                    Some(mut revoked) => tokio::select! {
                        message = stream.next() => message,
                        () = async { drop(revoked.wait_for(|r| *r).await) } => {
                            connection.close(CLOSE_REVOKED, "the API key was revoked").await;
                            return None;
                        }
                    },
                    None => stream.next().await,
                };
                let text = match message? {
                    Ok(Message::Text(text)) => text,
                    other => return Some((other, (state, connection, stream))),
                };
                match inspect(&state, &connection, &text).await {
                    Verdict::Pass => {
                        return Some((Ok(Message::Text(text)), (state, connection, stream)));
                    }
                    Verdict::Answer(answer) => {
                        if !connection.send(answer).await {
                            return None;
                        }
                    }
                    Verdict::Close(code, reason) => {
                        connection.close(code, &reason).await;
                        return None;
                    }
                }
            }
        },
    )
}

/// The guard's rules for one text message from the client.
async fn inspect(state: &HttpState, connection: &Connection, text: &str) -> Verdict {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return Verdict::Pass; // async-graphql closes on a malformed message
    };
    let kind = message["type"].as_str().unwrap_or("");
    let id = message["id"].as_str().unwrap_or("");
    match kind {
        "connection_init" => {
            if connection.registration().is_some() {
                return Verdict::Pass; // async-graphql closes with 4429
            }
            let caller = match connection_key(&message["payload"]) {
                None => Err(NO_KEY),
                Some(secret) => match keys::authenticate(&state.app.db, &secret).await {
                    Ok(caller) => {
                        let registration = state.sockets.register(caller.key_id);
                        *connection.registration() = Some(registration);
                        Ok(caller)
                    }
                    Err(crate::auth::AuthError::Db(e)) => {
                        tracing::error!(error = %e, "could not check an API key");
                        Err("the API key is not valid")
                    }
                    Err(_) => Err("the API key is not valid"),
                },
            };
            *connection.caller.lock().unwrap_or_else(|e| e.into_inner()) = Some(caller);
            Verdict::Pass
        }
        "subscribe" | "start" => {
            let Some(key_id) = connection.registration().as_ref().map(|r| r.key_id) else {
                return Verdict::Pass; // async-graphql refuses it
            };
            match keys::active_among(&state.app.db, &[key_id]).await {
                Ok(active) if active.is_empty() => {
                    return Verdict::Close(CLOSE_REVOKED, "the API key was revoked".into());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "could not check a WebSocket's key");
                    return Verdict::Answer(connection.refusal(
                        id,
                        Code::Internal,
                        crate::error::INTERNAL_MESSAGE,
                    ));
                }
            }
            let started = match connection.registration().as_mut() {
                Some(registration) => registration.start(id),
                None => return Verdict::Pass,
            };
            match started {
                Ok(()) => Verdict::Pass,
                Err(Refusal::Duplicate) => Verdict::Close(
                    CLOSE_DUPLICATE,
                    format!("Subscriber for {id} already exists"),
                ),
                Err(Refusal::Capped(message)) => {
                    state
                        .app
                        .metrics
                        .graphql_error(Code::LimitExceeded.as_str());
                    Verdict::Answer(connection.refusal(id, Code::LimitExceeded, &message))
                }
            }
        }
        "complete" | "stop" => {
            if let Some(registration) = connection.registration().as_mut() {
                registration.finish(id);
            }
            Verdict::Pass
        }
        _ => Verdict::Pass,
    }
}

/// Notes an operation the server finished (its `complete` or `error`).
fn finished_operation(connection: &Connection, text: &str) {
    // async-graphql writes `type` first; only these two are parsed.
    if !(text.starts_with("{\"type\":\"complete\"") || text.starts_with("{\"type\":\"error\"")) {
        return;
    }
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if let (Some(id), Some(registration)) =
        (message["id"].as_str(), connection.registration().as_mut())
    {
        registration.finish(id);
    }
}

/// The key of a `connection_init` payload: `Authorization: Bearer <key>` (any case) or `key`.
fn connection_key(payload: &Value) -> Option<String> {
    let object = payload.as_object()?;
    for (name, value) in object {
        let Some(text) = value.as_str() else { continue };
        if name.eq_ignore_ascii_case("authorization") {
            let key = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))?;
            return Some(key.trim().to_owned());
        }
        if name == "key" {
            return Some(text.trim().to_owned());
        }
    }
    None
}

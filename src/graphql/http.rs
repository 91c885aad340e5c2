//! HTTP routes: GraphQL over HTTP at `/graphql`, GraphiQL at `/`, the
//! console at `/console`, `/healthz`, `/metrics`.

use std::sync::Arc;

use async_graphql::http::parse_query_string;
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{BatchRequest, BatchResponse, Request};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;

use crate::config::ServerSettings;
use crate::error::Code;

use super::TagsmithSchema;
use super::context::RequestAuth;
use super::limits;
use super::loaders::Loaders;
use super::ops::{self, ErrorCodes, IntrospectionRefused};
use crate::app::AppState;

/// Everything the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// For HTTP requests, checked before execution ([`execute`]).
    pub schema: TagsmithSchema,
    /// For WebSocket connections: the same, with the checks in the schema.
    pub websocket_schema: TagsmithSchema,
    pub app: AppState,
    pub settings: Arc<ServerSettings>,
    /// The open WebSocket connections, by key.
    pub sockets: Arc<super::websocket::Sockets>,
    /// Parsed documents of queries that passed the checks, by text.
    pub documents: Arc<super::documents::Documents>,
}

/// The router of the whole server.
pub fn router(state: HttpState) -> Router {
    let production = &state.settings.production;
    let mut router = Router::new();
    if !production.no_graphiql {
        router = router
            .route("/", get(graphiql))
            .route("/assets/{file}", get(asset));
    }
    if !production.no_metrics {
        router = router.route("/metrics", get(super::ops::metrics));
    }
    router
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(super::ops::healthz))
        .route(
            "/import/{kind}",
            axum::routing::post(super::import::upload).layer(axum::extract::DefaultBodyLimit::max(
                state.settings.max_body_bytes,
            )),
        )
        .route("/console", get(super::console::page))
        .route("/console/{*file}", get(super::console::asset))
        .route(
            "/segments/{id}/members.csv",
            get(super::import::members_csv),
        )
        .route(
            "/segments/{id}/members.ndjson",
            get(super::import::members_ndjson),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.app.metrics),
            super::ops::track,
        ))
        .with_state(state)
}

/// Any path the server does not serve: 404 with a body in the GraphQL error shape.
pub(super) async fn not_found(uri: axum::http::Uri) -> Response {
    request_error(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!("no such path: {}", uri.path()),
    )
}

/// A path served, with another method: 405 in the GraphQL error shape.
pub(super) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    request_error(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadUserInput,
        format!("{} does not accept {method}", uri.path()),
    )
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// An error outside GraphQL execution, in the GraphQL response shape.
pub(super) fn request_error(
    status: StatusCode,
    code: Code,
    message: impl Into<String>,
) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message.into(), "extensions": { "code": code.as_str() } }]
    });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(ErrorCodes(vec![code.as_str().to_owned()]));
    response
}

async fn graphql_post(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && mime != GRAPHQL_RESPONSE {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadUserInput,
            "send the request as `Content-Type: application/json`",
        );
    }
    let timeout = state.settings.body_timeout();
    let read = tokio::time::timeout(timeout, read_body(body, state.settings.max_body_bytes));
    let bytes: Bytes = match read.await {
        Ok(Some(bytes)) => bytes,
        Err(_) => {
            let mut response = request_error(
                StatusCode::REQUEST_TIMEOUT,
                Code::LimitExceeded,
                format!(
                    "the request body was not received within {} ms",
                    timeout.as_millis()
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Ok(None) => {
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::LimitExceeded,
                format!(
                    "the request body is larger than {} bytes",
                    state.settings.max_body_bytes
                ),
            );
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                format!("the body is not a valid GraphQL request: {e}"),
            );
        }
    };
    if batch.iter().any(|request| request.query.trim().is_empty()) {
        return request_error(
            StatusCode::BAD_REQUEST,
            Code::BadUserInput,
            "the request has no `query`: send {\"query\": \"<a GraphQL document>\"}",
        );
    }
    if let BatchRequest::Batch(requests) = &batch {
        let max = state.settings.limits.max_batch;
        if requests.is_empty() {
            return request_error(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                "the batch is empty",
            );
        }
        if requests.len() > max {
            return request_error(
                StatusCode::BAD_REQUEST,
                Code::LimitExceeded,
                format!(
                    "a batch holds at most {max} operations, not {}",
                    requests.len()
                ),
            );
        }
    }
    let response = execute(&state, &headers, batch).await;
    respond(&headers, response)
}

/// Past the limit, how much more of a body is read (and dropped) so that
/// the client, still sending, gets the 413 instead of a reset connection.
const DRAIN_BYTES: usize = 32 << 20;

/// The body, or `None` when it is larger than `limit`.
async fn read_body(body: Body, limit: usize) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let mut collected: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return None };
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            collected.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(DRAIN_BYTES) {
            return None;
        }
    }
    (seen <= limit).then(|| Bytes::from(collected))
}

/// GET /graphql: a WebSocket upgrade for subscriptions, else a query in the URL.
async fn graphql_get(State(state): State<HttpState>, request: axum::extract::Request) -> Response {
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (mut parts, _) = request.into_parts();
    if wants_websocket {
        return super::websocket::upgrade(state, &mut parts).await;
    }
    let query = parts.uri.query().map(str::to_owned);
    graphql_query_string(state, parts.headers, query).await
}

async fn graphql_query_string(
    state: HttpState,
    headers: HeaderMap,
    query: Option<String>,
) -> Response {
    let request = match parse_query_string(query.as_deref().unwrap_or("")) {
        Ok(request) => request,
        Err(e) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                Code::BadUserInput,
                format!("the query string is not a valid GraphQL request: {e}"),
            );
        }
    };
    if is_mutation(&request) {
        let mut response = request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::BadUserInput,
            "mutations must be sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let response = execute(&state, &headers, BatchRequest::Single(request)).await;
    respond(&headers, response)
}

/// Whether the operation a GET request would run is a mutation.
fn is_mutation(request: &Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        return false; // execution reports the syntax error
    };
    let operation = match &request.operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|(op_name, _)| op_name.map(|n| n.as_str()) == Some(name.as_str()))
            .map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    };
    operation.is_some_and(|op| op.node.ty != OperationType::Query)
}

/// Runs the operations of a request: each one refused by the checks that
/// run before execution ([`limits::refuse`], and
/// [`ops::refuse_introspection`] when the caller may not introspect) gets
/// its error without running; the others run as a batch does.
async fn execute(state: &HttpState, headers: &HeaderMap, batch: BatchRequest) -> BatchResponse {
    let (batch, introspection_refused) = prepare(state, headers, batch).await;
    let run = |mut request: Request| async move {
        // A query seen before skips its parse and the checks of its text.
        let kept = state.documents.get(&request.query);
        let refusal = match &kept {
            Some(document) => {
                request.set_parsed_query(ExecutableDocument::clone(document));
                limits::refuse_variables(&request)
            }
            None => limits::refuse(&mut request, &state.settings.limits),
        };
        // Kept to put the answer back in the selection's order.
        let document = match (kept, &refusal) {
            (Some(document), _) => Some(document),
            (None, None) => {
                let document = request.parsed_query().ok().cloned().map(Arc::new);
                if let Some(document) = &document {
                    state.documents.keep(&request.query, Arc::clone(document));
                }
                document
            }
            (None, Some(_)) => None,
        };
        let refusal =
            refusal.or_else(|| ops::refuse_introspection(&mut request, introspection_refused));
        match refusal {
            Some(error) => async_graphql::Response::from_errors(vec![error]),
            None => {
                let operation = request.operation_name.clone();
                let mut response =
                    limits::within_deadline(&state.settings.limits, state.schema.execute(request))
                        .await;
                if let Some(document) = document {
                    super::order::restore(&document, operation.as_deref(), &mut response.data);
                }
                response
            }
        }
    };
    match batch {
        BatchRequest::Single(request) => BatchResponse::Single(run(request).await),
        BatchRequest::Batch(requests) => BatchResponse::Batch(
            futures_util::future::join_all(requests.into_iter().map(run)).await,
        ),
    }
}

/// Attaches the caller and the request's DataLoaders to each operation;
/// also says whether the caller may introspect.
async fn prepare(
    state: &HttpState,
    headers: &HeaderMap,
    batch: BatchRequest,
) -> (BatchRequest, Option<IntrospectionRefused>) {
    let auth = authenticate(state, headers).await;
    let introspection_refused = if state.settings.production.no_introspection {
        Some(IntrospectionRefused {
            code: Code::Forbidden,
            message: "schema introspection is turned off on this server",
        })
    } else if state.settings.require_key_for_introspection && !matches!(auth, RequestAuth::Key(_)) {
        Some(IntrospectionRefused {
            code: Code::Unauthenticated,
            message: "schema introspection needs an API key: send `Authorization: Bearer <key>`",
        })
    } else {
        None
    };
    let workspace_id = match &auth {
        RequestAuth::Key(caller) => Some(caller.workspace_id),
        _ => None,
    };
    let decorate = |mut request: Request| {
        if let Some(workspace_id) = workspace_id {
            request = request.data(Loaders::new(
                &state.app.db,
                workspace_id,
                &state.app.clock,
                &state.app.scripts,
            ));
        }
        if introspection_refused.is_some() {
            request = request.disable_introspection();
        }
        request.data(auth.clone())
    };
    let batch = match batch {
        BatchRequest::Single(request) => BatchRequest::Single(decorate(request)),
        BatchRequest::Batch(requests) => {
            BatchRequest::Batch(requests.into_iter().map(decorate).collect())
        }
    };
    (batch, introspection_refused)
}

/// Reads `Authorization: Bearer <key>`.
pub(super) async fn authenticate(state: &HttpState, headers: &HeaderMap) -> RequestAuth {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return RequestAuth::Anonymous;
    };
    let Some(secret) = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    }) else {
        return RequestAuth::Invalid;
    };
    match state
        .app
        .keys
        .authenticate(&state.app.db, secret.trim())
        .await
    {
        Ok(caller) => RequestAuth::Key(caller),
        Err(crate::auth::AuthError::Db(e)) => {
            tracing::error!(error = %e, "could not check an API key");
            RequestAuth::Invalid
        }
        Err(_) => RequestAuth::Invalid,
    }
}

/// Serializes the response as `application/graphql-response+json` when the
/// client accepts it (with status 400 for a request that could not run), else as JSON.
/// A request that could not run (parsing, validation, variables) has no
/// `data` entry, as the GraphQL spec asks.
fn respond(headers: &HeaderMap, mut response: BatchResponse) -> Response {
    let responses = match &mut response {
        BatchResponse::Single(r) => std::slice::from_mut(r),
        BatchResponse::Batch(rs) => rs.as_mut_slice(),
    };
    responses.iter_mut().for_each(add_codes);
    let codes: Vec<String> = responses
        .iter()
        .flat_map(ops::response_codes)
        .map(str::to_owned)
        .collect();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants_graphql_response = accept.contains(GRAPHQL_RESPONSE);
    let not_executed = match &response {
        BatchResponse::Single(r) => is_request_error(r),
        BatchResponse::Batch(_) => false,
    };
    // Serialized once, straight to bytes: async-graphql's values keep the
    // selection's order (a `serde_json::Value` would sort the keys).
    let body = match &response {
        BatchResponse::Single(r) => serde_json::to_vec(&WireResponse::of(r)),
        BatchResponse::Batch(rs) => {
            serde_json::to_vec(&rs.iter().map(WireResponse::of).collect::<Vec<_>>())
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            return request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::Internal,
                INTERNAL_MESSAGE,
            );
        }
    };
    let (status, content_type) = if wants_graphql_response {
        let status = if not_executed {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        (status, GRAPHQL_RESPONSE)
    } else {
        (StatusCode::OK, "application/json")
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    response.extensions_mut().insert(ErrorCodes(codes));
    response
}

/// Whether a response is a request error: the operation did not run
/// (parsing, validation, variables), so its errors have no path.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// One response as it goes on the wire: `errors`, then `data` (none when
/// the operation never ran: a request error), then `extensions`.
#[derive(serde::Serialize)]
struct WireResponse<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

impl<'a> WireResponse<'a> {
    fn of(response: &'a async_graphql::Response) -> Self {
        WireResponse {
            errors: &response.errors,
            data: (!is_request_error(response)).then_some(&response.data),
            extensions: &response.extensions,
        }
    }
}

/// Gives every error a code: resolver errors have theirs already; the rest
/// come from parsing and validating the request (BAD_USER_INPUT) or from
/// its limits (LIMIT_EXCEEDED).
pub(super) fn add_codes(response: &mut async_graphql::Response) {
    for error in &mut response.errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code && is_internal(error) {
            tracing::error!(error = %error.message, path = ?error.path, "internal error");
            error.message = INTERNAL_MESSAGE.to_owned();
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", Code::Internal.as_str());
        } else if !has_code {
            let code = if is_limit_error(&error.message) {
                Code::LimitExceeded
            } else {
                Code::BadUserInput
            };
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", code.as_str());
        }
    }
}

/// What a client reads of an internal failure (the server log has the rest).
const INTERNAL_MESSAGE: &str = crate::error::INTERNAL_MESSAGE;

/// Whether an error without a code came from the database or the
/// filesystem (a resolver's `?` that skipped `ApiError`): never shown raw.
fn is_internal(error: &async_graphql::ServerError) -> bool {
    error.source.as_ref().is_some_and(|source| {
        source.is::<sea_orm::DbErr>()
            || source.is::<sea_orm::SqlxError>()
            || source.is::<std::io::Error>()
    })
}

/// Whether an async-graphql validation message is about a query limit.
fn is_limit_error(message: &str) -> bool {
    message.starts_with("Query is too complex")
        || message.starts_with("Query is nested too deep")
        || message.starts_with("The recursion depth of the query")
        || message.contains("directives")
}

const GRAPHIQL_HTML: &str = include_str!("graphiql.html");

async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL_HTML)
}

/// GraphiQL's scripts and styles, shipped inside the binary (gzip-compressed)
/// so the playground works without internet access.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (bytes, content_type): (&'static [u8], &str) = match file.as_str() {
        "graphiql.min.js" => (
            include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
            "text/javascript",
        ),
        "graphiql.min.css" => (
            include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
            "text/css",
        ),
        "react.production.min.js" => (
            include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
            "text/javascript",
        ),
        "react-dom.production.min.js" => (
            include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
            "text/javascript",
        ),
        _ => {
            return request_error(
                StatusCode::NOT_FOUND,
                Code::NotFound,
                format!("no such asset: {file}"),
            );
        }
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use async_graphql::{Pos, Response, ServerError};

    use super::add_codes;

    /// A resolver's `?` on a database error skips `ApiError`: the edge still
    /// shows it as INTERNAL, without the driver's message.
    #[test]
    fn a_raw_database_error_becomes_internal() {
        let raw: async_graphql::Error =
            sea_orm::DbErr::Custom("SELECT * FROM users_gone: no such table".into()).into();
        let io: async_graphql::Error =
            std::io::Error::other("/var/lib/tagsmith/tagsmith.db: permission denied").into();
        let mut response = Response::from_errors(vec![
            raw.into_server_error(Pos::default()),
            io.into_server_error(Pos::default()),
            ServerError::new("Unknown field \"x\" on type \"User\".", None),
        ]);
        add_codes(&mut response);
        let json = serde_json::to_value(&response).unwrap();
        for error in &json["errors"].as_array().unwrap()[..2] {
            assert_eq!(error["extensions"]["code"], "INTERNAL", "{json}");
            assert_eq!(error["message"], crate::error::INTERNAL_MESSAGE, "{json}");
        }
        assert_eq!(json["errors"][2]["extensions"]["code"], "BAD_USER_INPUT");
    }
}

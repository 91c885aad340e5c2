//! What operators need at the edge: `/healthz`, `/metrics`, the counting
//! of requests and error codes, and refusing introspection when it is
//! turned off. A standalone worker serves the first two on its own
//! ([`worker_router`]).

use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextSubscribe};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};

use super::errors::server_error;
use crate::error::Code;
use crate::metrics::Metrics;

use super::http::HttpState;
use crate::app::AppState;

/// What `/healthz` and `/metrics` need: the server's or a standalone
/// worker's.
#[derive(Clone)]
pub struct OpsState {
    pub app: AppState,
    /// `/metrics` only for `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

impl FromRef<HttpState> for OpsState {
    fn from_ref(state: &HttpState) -> Self {
        OpsState {
            app: state.app.clone(),
            metrics_token: state.settings.production.metrics_token.clone(),
        }
    }
}

/// The routes of a standalone worker (`tagsmith worker --metrics-bind`):
/// `/healthz` and `/metrics`, its own script runs counted.
pub fn worker_router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(super::http::not_found)
        .method_not_allowed_fallback(super::http::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.app.metrics),
            track,
        ))
        .with_state(state)
}

/// `GET /healthz`: 200 while the database answers within 2 s, else 503.
pub(super) async fn healthz(State(state): State<OpsState>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        state.app.db.execute_unprepared("SELECT 1"),
    )
    .await;
    match ping {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database timed out\n").into_response(),
    }
}

/// The `extensions.code`s of the GraphQL errors a response carries, put on
/// the response by the handlers for [`track`] to count.
#[derive(Debug, Clone, Default)]
pub(super) struct ErrorCodes(pub Vec<String>);

/// For the operations of WebSocket connections, which async-graphql-axum
/// executes and answers itself: every response's errors get their codes
/// (and internal ones a generic message) as over HTTP
/// ([`super::http::add_codes`]), and the codes are counted in `/metrics`.
pub struct ResponseCodes {
    pub metrics: Option<Arc<Metrics>>,
}

impl ExtensionFactory for ResponseCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ResponseCodesExtension {
            metrics: self.metrics.clone(),
        })
    }
}

struct ResponseCodesExtension {
    metrics: Option<Arc<Metrics>>,
}

impl Extension for ResponseCodesExtension {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, async_graphql::Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, async_graphql::Response> {
        let metrics = self.metrics.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                super::http::add_codes(&mut response);
                if let Some(metrics) = &metrics {
                    for code in response_codes(&response) {
                        metrics.graphql_error(code);
                    }
                }
                response
            })
            .boxed()
    }
}

/// The `extensions.code` of each of a response's errors.
pub(super) fn response_codes(response: &async_graphql::Response) -> impl Iterator<Item = &str> {
    response
        .errors
        .iter()
        .filter_map(|e| e.extensions.as_ref()?.get("code"))
        .filter_map(|code| match code {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        })
}

/// Counts every answered request by matched route and status class, and
/// the error codes the response carries.
pub(super) async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics.http_request(&route, response.status().as_u16());
    if let Some(ErrorCodes(codes)) = response.extensions().get::<ErrorCodes>() {
        for code in codes {
            metrics.graphql_error(code);
        }
    }
    response
}

/// `GET /metrics`: the Prometheus text format. With `--metrics-token`, only
/// for `Authorization: Bearer <token>`.
pub(super) async fn metrics(State(state): State<OpsState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token
        && !bearer_matches(&headers, token)
    {
        let mut response = super::http::request_error(
            StatusCode::UNAUTHORIZED,
            crate::error::Code::Unauthenticated,
            "send the metrics token as `Authorization: Bearer <token>`",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let backlog = match crate::outbox::backlog(&state.app.db, crate::time::now()).await {
        Ok(backlog) => Some(backlog),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the outbox backlog");
            None
        }
    };
    match crate::webhooks::deliveries::backlog(&state.app.db).await {
        Ok((pending, oldest)) => {
            let now = crate::time::now();
            let age = oldest
                .and_then(|at| (now - at).to_std().ok())
                .unwrap_or_default();
            state.app.metrics.webhook_backlog(pending, age);
        }
        Err(e) => tracing::warn!(error = ?e, "metrics: could not read the webhook backlog"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.app.metrics.render(backlog),
    )
        .into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (compared
/// through SHA-256 digests, so the time taken says nothing about the token).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(sent) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
    else {
        return false;
    };
    Sha256::digest(sent.trim().as_bytes()) == Sha256::digest(token.as_bytes())
}

/// Why a request's caller may not introspect the schema: the code and message it gets.
#[derive(Debug, Clone, Copy)]
pub(super) struct IntrospectionRefused {
    pub code: Code,
    pub message: &'static str,
}

/// The refusal of a document that asks for `__schema` or `__type` when its
/// caller may not introspect (`refused`; `__typename` stays allowed).
/// Without it, async-graphql answers a disabled introspection with `null`,
/// which looks like an empty schema rather than a refusal. Checked before
/// execution (`http::execute`), not by a schema extension: any extension
/// makes async-graphql wrap every field's resolution in its hooks.
pub(super) fn refuse_introspection(
    request: &mut async_graphql::Request,
    refused: Option<IntrospectionRefused>,
) -> Option<async_graphql::ServerError> {
    let refused = refused?;
    // The document `limits::refuse` parsed, kept in the request; one that
    // does not parse is refused by the execution, with its position.
    let document = request.parsed_query().ok()?;
    asks_introspection(document).then(|| server_error(refused.code, refused.message))
}

/// Whether any operation or fragment of the document selects `__schema` or `__type`.
fn asks_introspection(document: &ExecutableDocument) -> bool {
    let mut stack: Vec<&SelectionSet> = document
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set.node)
        .chain(
            document
                .fragments
                .values()
                .map(|f| &f.node.selection_set.node),
        )
        .collect();
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name == "__schema" || name == "__type" {
                        return true;
                    }
                    stack.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    stack.push(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(_) => {} // its definition is walked too
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::asks_introspection;

    #[test]
    fn finds_introspection_anywhere_in_a_document() {
        let check = |query: &str| {
            asks_introspection(&async_graphql::parser::parse_query(query).expect("parses"))
        };
        assert!(check("{ __schema { types { name } } }"));
        assert!(check("{ a: __type(name: \"User\") { name } }"));
        assert!(check(
            "query { ...F } fragment F on Query { __schema { queryType { name } } }"
        ));
        assert!(check(
            "{ ... on Query { ... on Query { __type(name: \"X\") { name } } } }"
        ));
        assert!(check(
            "query A { __typename } query B { __schema { __typename } }"
        ));
        assert!(!check("{ __typename viewer { name } }"));
        assert!(!check("{ users { nodes { __typename schema: email } } }"));
    }
}

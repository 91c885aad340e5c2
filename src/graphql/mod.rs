//! The GraphQL edge: schema assembly, request context, auth checks, error
//! codes, DataLoaders and the HTTP routes.
//!
//! Invariant: the only module that knows async-graphql (and, with `server`,
//! axum). Resolvers stay thin: read the caller, decode ids, call one service
//! of `app` or one domain function, convert the result. They return
//! [`Result`] (an `ApiError` result), so `?` keeps a domain error's code.

mod auth;
mod automation;
mod connection;
mod console;
mod context;
pub mod cost;
pub mod documents;
mod errors;
pub(crate) use errors::Result;
pub mod http;
pub mod ids;
mod import;
mod limits;
mod loaders;
pub mod ops;
mod order;
mod segments;
mod subjects;
mod subscription;
mod tags;
mod webhooks;
pub mod websocket;

use std::sync::Arc;

use async_graphql::{MergedObject, Schema};

use crate::app::AppState;
use crate::config::{ProductionSettings, QueryLimits};

pub use context::RequestAuth;

#[derive(MergedObject, Default)]
pub struct Query(
    subjects::SubjectQuery,
    tags::TagQuery,
    segments::SegmentQuery,
    automation::AutomationQuery,
    auth::AuthQuery,
    webhooks::WebhookQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    subjects::SubjectMutation,
    tags::TagMutation,
    segments::SegmentMutation,
    automation::AutomationMutation,
    auth::AuthMutation,
    import::ImportMutation,
    webhooks::WebhookMutation,
);

pub type TagsmithSchema = Schema<Query, Mutation, subscription::Subscription>;

/// Builds the schema with its limits; `state` is reachable from every resolver.
pub fn build_schema(state: Option<AppState>, limits: &QueryLimits) -> TagsmithSchema {
    build_schema_with(
        state,
        limits,
        &ProductionSettings::default(),
        Checks::InSchema,
    )
}

/// Where a request's token cap and NUL check ([`limits::refuse`]) run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// In a schema extension: for the operations of WebSocket connections,
    /// which async-graphql-axum executes.
    InSchema,
    /// Before execution, by the HTTP handlers (`http::execute`): a schema
    /// without extensions resolves each field directly instead of through
    /// the extensions' hooks.
    BeforeExecution,
}

/// [`build_schema`], with introspection or suggestions turned off as
/// `production` says, and the request checks where `checks` says.
pub fn build_schema_with(
    state: Option<AppState>,
    limits: &QueryLimits,
    production: &ProductionSettings,
    checks: Checks,
) -> TagsmithSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .register_output_type::<subjects::Node>()
    // Depth is measured by `limits::refuse` (with introspection by its
    // own rules), before any of async-graphql's checks walk the document.
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(limits.max_recursive_depth)
    .limit_directives(limits.max_directives);
    if checks == Checks::InSchema {
        builder = builder
            .extension(limits::RequestLimits {
                limits: limits.clone(),
            })
            .extension(ops::ResponseCodes {
                metrics: state.as_ref().map(|s| Arc::clone(&s.metrics)),
            });
    }
    if production.no_introspection {
        builder = builder.disable_introspection();
    }
    if production.no_suggestions {
        builder = builder.disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The schema in SDL, as `tagsmith export-schema` prints it and `schema.graphql` holds it.
pub fn schema_sdl() -> String {
    build_schema(None, &QueryLimits::default()).sdl()
}

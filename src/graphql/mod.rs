//! The GraphQL edge: schema assembly, request context, auth checks, error
//! codes, DataLoaders and the HTTP routes.
//!
//! Invariant: the only module that knows async-graphql and axum. Resolvers
//! stay thin: read the caller, call one domain function, convert the result.

mod auth;
mod connection;
pub(crate) use crate::ids;
mod context;
pub mod http;
mod loaders;
mod subjects;
mod tags;

use async_graphql::{EmptySubscription, MergedObject, Schema};
use sea_orm::DatabaseConnection;

use crate::config::QueryLimits;

pub use context::RequestAuth;

/// What every resolver can reach: the database and the settings.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
}

#[derive(MergedObject, Default)]
pub struct Query(subjects::SubjectQuery, tags::TagQuery, auth::AuthQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    subjects::SubjectMutation,
    tags::TagMutation,
    auth::AuthMutation,
);

pub type TagsmithSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema with its limits; `state` is reachable from every resolver.
pub fn build_schema(state: Option<AppState>, limits: &QueryLimits) -> TagsmithSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .register_output_type::<subjects::Node>()
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursive_depth)
        .limit_directives(limits.max_directives);
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The schema in SDL, as `tagsmith export-schema` prints it and `schema.graphql` holds it.
pub fn schema_sdl() -> String {
    build_schema(None, &QueryLimits::default()).sdl()
}

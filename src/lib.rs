//! tagsmith: a GraphQL server that organizes the accounts and users of a
//! SaaS or CRM with tags, segments and Rhai automation.
//!
//! See ARCHITECTURE.md for the map of the code.

pub mod app;
pub mod auth;
pub mod automation;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod ids;
pub mod import;
pub mod metrics;
pub mod outbox;
pub mod segments;
pub mod server;
pub mod sqlite_read;
pub mod subjects;
pub mod tagging;
pub mod tags;
pub mod time;
pub mod vocab;
pub mod webhooks;

//! Integration tests: the real server over HTTP against a real database.
//!
//! Every test runs on SQLite; the same test runs on PostgreSQL when
//! `TAGSMITH_TEST_DATABASE_URL` is set (each test gets a fresh database).
//! Set `TEST_LOG=1` to see the server's logs.

mod helpers;

mod accounts_users;
mod audit;
mod auth;
mod automation;
mod bad_input;
mod browser;
mod cli;
mod concurrency;
mod crash;
mod hostile_input;
mod http;
mod import;
mod input_limits;
mod introspection;
mod limits;
mod modules;
mod ops;
mod reads;
mod references;
mod schema;
mod segments;
mod subscriptions;
mod tags;
mod tenancy;
mod webhooks;

//! Database migrations of tagsmith, one file each, applied in order by
//! `tagsmith migrate` and at the start of `tagsmith serve`.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_workspaces_and_keys;
mod m20261126_000002_create_accounts_and_users;
mod m20261126_000003_create_tags;
mod m20261126_000004_create_scripts;
mod m20261126_000005_create_segments;
mod m20261127_000006_pending_events_index;
mod m20261206_000007_create_webhooks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_workspaces_and_keys::Migration),
            Box::new(m20261126_000002_create_accounts_and_users::Migration),
            Box::new(m20261126_000003_create_tags::Migration),
            Box::new(m20261126_000004_create_scripts::Migration),
            Box::new(m20261126_000005_create_segments::Migration),
            Box::new(m20261127_000006_pending_events_index::Migration),
            Box::new(m20261206_000007_create_webhooks::Migration),
        ]
    }
}

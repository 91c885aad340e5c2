//! On PostgreSQL, the worker's page of due events comes from an index of
//! the pending events alone. Through the `(status, id)` index or the
//! primary key, PostgreSQL (whose statistics lag behind an outbox that
//! changes by hundreds of thousands of rows between two `ANALYZE` runs)
//! chose to walk every finished event before the first pending one: 377 ms
//! per claim behind 300,000 finished events, against 0.2 ms with it.
//! SQLite keeps no statistics (tagsmith never runs `ANALYZE` there) and
//! always searches `(status, id)`, so it is spared the index's cost on
//! every event written.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE INDEX automation_events_pending ON automation_events (id) \
                     WHERE status = 'pending'",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP INDEX automation_events_pending")
                .await?;
        }
        Ok(())
    }
}

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_workspaces_and_keys::Workspaces;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Scripts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Scripts::Id))
                    .col(big_integer(Scripts::WorkspaceId))
                    .col(string(Scripts::Name))
                    .col(integer(Scripts::Version))
                    .col(text(Scripts::Source))
                    .col(boolean(Scripts::Enabled))
                    .col(timestamp_with_time_zone(Scripts::CreatedAt))
                    .col(timestamp_with_time_zone(Scripts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Scripts::Table, Scripts::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScriptRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ScriptRuns::Id))
                    .col(big_integer(ScriptRuns::WorkspaceId))
                    .col(big_integer(ScriptRuns::ScriptId))
                    .col(integer(ScriptRuns::ScriptVersion))
                    .col(big_integer(ScriptRuns::EventId))
                    .col(string_len(ScriptRuns::EventKind, 16))
                    .col(string_len(ScriptRuns::SubjectKind, 8))
                    .col(big_integer(ScriptRuns::SubjectId))
                    .col(boolean(ScriptRuns::Ok))
                    .col(text_null(ScriptRuns::Error))
                    .col(json_binary(ScriptRuns::Logs))
                    .col(json_binary(ScriptRuns::Actions))
                    .col(big_integer(ScriptRuns::DurationMicros))
                    .col(timestamp_with_time_zone(ScriptRuns::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ScriptRuns::Table, ScriptRuns::ScriptId)
                            .to(Scripts::Table, Scripts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let indexes = [
            // one script per name per workspace
            Index::create()
                .name("scripts_workspace_name")
                .table(Scripts::Table)
                .col(Scripts::WorkspaceId)
                .col(Scripts::Name)
                .unique()
                .to_owned(),
            // a script's runs, newest first
            Index::create()
                .name("script_runs_script")
                .table(ScriptRuns::Table)
                .col(ScriptRuns::ScriptId)
                .col(ScriptRuns::Id)
                .to_owned(),
            // the runs of one event (at-least-once: a retried event replaces its runs)
            Index::create()
                .name("script_runs_event")
                .table(ScriptRuns::Table)
                .col(ScriptRuns::EventId)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Scripts {
    Table,
    Id,
    WorkspaceId,
    Name,
    Version,
    Source,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScriptRuns {
    Table,
    Id,
    WorkspaceId,
    ScriptId,
    ScriptVersion,
    EventId,
    EventKind,
    SubjectKind,
    SubjectId,
    Ok,
    Error,
    Logs,
    Actions,
    DurationMicros,
    At,
}

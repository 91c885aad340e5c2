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
                    .table(Tags::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Tags::Id))
                    .col(big_integer(Tags::WorkspaceId))
                    .col(string(Tags::Name))
                    .col(string_null(Tags::Key))
                    .col(string_null(Tags::Value))
                    .col(big_integer_null(Tags::ParentId))
                    .col(text_null(Tags::Description))
                    .col(timestamp_with_time_zone(Tags::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tags::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tags::Table, Tags::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TagAssignments::Table)
                    .if_not_exists()
                    .col(big_pk_auto(TagAssignments::Id))
                    .col(big_integer(TagAssignments::WorkspaceId))
                    .col(big_integer(TagAssignments::TagId))
                    .col(string_len(TagAssignments::SubjectKind, 8))
                    .col(big_integer(TagAssignments::SubjectId))
                    .col(string_len(TagAssignments::Source, 8))
                    .col(string_null(TagAssignments::Actor))
                    .col(timestamp_with_time_zone(TagAssignments::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TagChanges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(TagChanges::Id))
                    .col(big_integer(TagChanges::WorkspaceId))
                    .col(string_len(TagChanges::Op, 8))
                    .col(big_integer(TagChanges::TagId))
                    .col(string_len(TagChanges::SubjectKind, 8))
                    .col(big_integer(TagChanges::SubjectId))
                    .col(string_len(TagChanges::Source, 8))
                    .col(string_null(TagChanges::Actor))
                    .col(big_integer_null(TagChanges::CauseId))
                    .col(timestamp_with_time_zone(TagChanges::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AutomationEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AutomationEvents::Id))
                    .col(big_integer(AutomationEvents::WorkspaceId))
                    .col(string_len(AutomationEvents::Kind, 16))
                    .col(string_len(AutomationEvents::SubjectKind, 8))
                    .col(big_integer(AutomationEvents::SubjectId))
                    .col(big_integer_null(AutomationEvents::TagId))
                    .col(big_integer_null(AutomationEvents::SegmentId))
                    .col(big_integer_null(AutomationEvents::ChangeId))
                    .col(integer(AutomationEvents::Depth))
                    .col(big_integer_null(AutomationEvents::CauseId))
                    .col(string_len(AutomationEvents::Status, 8))
                    .col(integer(AutomationEvents::Attempts))
                    .col(timestamp_with_time_zone(AutomationEvents::RunAt))
                    .col(timestamp_with_time_zone_null(AutomationEvents::LockedUntil))
                    .col(text_null(AutomationEvents::LastError))
                    .col(timestamp_with_time_zone(AutomationEvents::CreatedAt))
                    .to_owned(),
            )
            .await?;

        // A name is unique among the live tags of a workspace; deleted tags
        // keep their row (history points at it) and free the name.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX tags_workspace_name ON tags (workspace_id, name) \
                 WHERE deleted_at IS NULL",
            )
            .await?;
        // The worker's claim asks, per candidate event, whether its subject has
        // an earlier unfinished one: a partial index keeps that probe small
        // however many finished events pile up.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX automation_events_open_subject \
                 ON automation_events (subject_kind, subject_id, id) \
                 WHERE status IN ('pending', 'running')",
            )
            .await?;
        let indexes = [
            // children of a tag
            Index::create()
                .name("tags_parent")
                .table(Tags::Table)
                .col(Tags::ParentId)
                .to_owned(),
            // one assignment per (tag, subject); counts per tag and kind
            Index::create()
                .name("tag_assignments_tag_subject")
                .table(TagAssignments::Table)
                .col(TagAssignments::TagId)
                .col(TagAssignments::SubjectKind)
                .col(TagAssignments::SubjectId)
                .unique()
                .to_owned(),
            // a subject's tags
            Index::create()
                .name("tag_assignments_subject")
                .table(TagAssignments::Table)
                .col(TagAssignments::SubjectKind)
                .col(TagAssignments::SubjectId)
                .col(TagAssignments::TagId)
                .to_owned(),
            // history of a subject, newest first
            Index::create()
                .name("tag_changes_subject")
                .table(TagChanges::Table)
                .col(TagChanges::SubjectKind)
                .col(TagChanges::SubjectId)
                .col(TagChanges::Id)
                .to_owned(),
            // history of a tag, newest first; the rows one write just made
            Index::create()
                .name("tag_changes_tag")
                .table(TagChanges::Table)
                .col(TagChanges::TagId)
                .col(TagChanges::Id)
                .to_owned(),
            // history of a workspace, newest first
            Index::create()
                .name("tag_changes_workspace")
                .table(TagChanges::Table)
                .col(TagChanges::WorkspaceId)
                .col(TagChanges::Id)
                .to_owned(),
            // the worker's queue: events of a status in order
            Index::create()
                .name("automation_events_status")
                .table(AutomationEvents::Table)
                .col(AutomationEvents::Status)
                .col(AutomationEvents::Id)
                .to_owned(),
            // a subject's events in order
            Index::create()
                .name("automation_events_subject")
                .table(AutomationEvents::Table)
                .col(AutomationEvents::SubjectKind)
                .col(AutomationEvents::SubjectId)
                .col(AutomationEvents::Id)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Tags {
    Table,
    Id,
    WorkspaceId,
    Name,
    Key,
    Value,
    ParentId,
    Description,
    CreatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum TagAssignments {
    Table,
    Id,
    WorkspaceId,
    TagId,
    SubjectKind,
    SubjectId,
    Source,
    Actor,
    At,
}

#[derive(DeriveIden)]
enum TagChanges {
    Table,
    Id,
    WorkspaceId,
    Op,
    TagId,
    SubjectKind,
    SubjectId,
    Source,
    Actor,
    CauseId,
    At,
}

#[derive(DeriveIden)]
enum AutomationEvents {
    Table,
    Id,
    WorkspaceId,
    Kind,
    SubjectKind,
    SubjectId,
    TagId,
    SegmentId,
    ChangeId,
    Depth,
    CauseId,
    Status,
    Attempts,
    RunAt,
    LockedUntil,
    LastError,
    CreatedAt,
}

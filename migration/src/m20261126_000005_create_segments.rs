use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261126_000001_create_workspaces_and_keys::Workspaces;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let workspace_fk = |table: DynIden, column: DynIden| {
            ForeignKey::create()
                .from(table, column)
                .to(Workspaces::Table, Workspaces::Id)
                .on_delete(ForeignKeyAction::Cascade)
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Events::Id))
                    .col(big_integer(Events::WorkspaceId))
                    .col(string_len(Events::SubjectKind, 8))
                    .col(big_integer(Events::SubjectId))
                    .col(string(Events::Name))
                    .col(timestamp_with_time_zone(Events::At))
                    .col(json_binary(Events::Properties))
                    .foreign_key(&mut workspace_fk(
                        Events::Table.into_iden(),
                        Events::WorkspaceId.into_iden(),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Segments::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Segments::Id))
                    .col(big_integer(Segments::WorkspaceId))
                    .col(string(Segments::Name))
                    .col(string_null(Segments::Folder))
                    .col(string_len(Segments::SubjectKind, 8))
                    .col(text(Segments::Filter))
                    .col(json_binary(Segments::OnEntry))
                    .col(json_binary(Segments::OnExit))
                    .col(boolean(Segments::Tracked))
                    .col(boolean(Segments::TimeBased))
                    .col(timestamp_with_time_zone(Segments::CreatedAt))
                    .col(timestamp_with_time_zone(Segments::UpdatedAt))
                    .foreign_key(&mut workspace_fk(
                        Segments::Table.into_iden(),
                        Segments::WorkspaceId.into_iden(),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SegmentMemberships::Table)
                    .if_not_exists()
                    .col(big_integer(SegmentMemberships::SegmentId))
                    .col(big_integer(SegmentMemberships::SubjectId))
                    .col(timestamp_with_time_zone(SegmentMemberships::EnteredAt))
                    .primary_key(
                        Index::create()
                            .col(SegmentMemberships::SegmentId)
                            .col(SegmentMemberships::SubjectId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SegmentMemberships::Table, SegmentMemberships::SegmentId)
                            .to(Segments::Table, Segments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SegmentChanges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SegmentChanges::Id))
                    .col(big_integer(SegmentChanges::WorkspaceId))
                    .col(big_integer(SegmentChanges::SegmentId))
                    .col(string_len(SegmentChanges::SubjectKind, 8))
                    .col(big_integer(SegmentChanges::SubjectId))
                    .col(string_len(SegmentChanges::Op, 8))
                    .col(string_len(SegmentChanges::Reason, 16))
                    .col(big_integer_null(SegmentChanges::CauseId))
                    .col(timestamp_with_time_zone(SegmentChanges::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SegmentChanges::Table, SegmentChanges::SegmentId)
                            .to(Segments::Table, Segments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A tag change caused by a segment entry or exit names it here.
        manager
            .alter_table(
                Table::alter()
                    .table(TagChanges::Table)
                    .add_column(big_integer_null(TagChanges::CauseSegmentChangeId))
                    .to_owned(),
            )
            .await?;
        let indexes = [
            // events(name, 30d): one subject's events of one name since a time
            Index::create()
                .name("events_subject")
                .table(Events::Table)
                .col(Events::SubjectKind)
                .col(Events::SubjectId)
                .col(Events::Name)
                .col(Events::At)
                .to_owned(),
            // active_days(30d): one subject's events of any name since a time
            Index::create()
                .name("events_subject_at")
                .table(Events::Table)
                .col(Events::SubjectKind)
                .col(Events::SubjectId)
                .col(Events::At)
                .to_owned(),
            // one segment name per workspace
            Index::create()
                .name("segments_workspace_name")
                .table(Segments::Table)
                .col(Segments::WorkspaceId)
                .col(Segments::Name)
                .unique()
                .to_owned(),
            // a subject's stored memberships (re-evaluation, deletion)
            Index::create()
                .name("segment_memberships_subject")
                .table(SegmentMemberships::Table)
                .col(SegmentMemberships::SubjectId)
                .to_owned(),
            // a segment's history, newest first
            Index::create()
                .name("segment_changes_segment")
                .table(SegmentChanges::Table)
                .col(SegmentChanges::SegmentId)
                .col(SegmentChanges::Id)
                .to_owned(),
            // a subject's segment history
            Index::create()
                .name("segment_changes_subject")
                .table(SegmentChanges::Table)
                .col(SegmentChanges::SubjectKind)
                .col(SegmentChanges::SubjectId)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        if manager.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            // Whether text is a date PostgreSQL accepts (filters compare
            // attributes holding dates with `now`): a cast that fails is false.
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE OR REPLACE FUNCTION tagsmith_is_date(value text) RETURNS boolean AS $$
                     BEGIN
                         PERFORM value::date;
                         RETURN true;
                     EXCEPTION WHEN others THEN
                         RETURN false;
                     END
                     $$ LANGUAGE plpgsql IMMUTABLE STRICT",
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    WorkspaceId,
    SubjectKind,
    SubjectId,
    Name,
    At,
    Properties,
}

#[derive(DeriveIden)]
enum Segments {
    Table,
    Id,
    WorkspaceId,
    Name,
    Folder,
    SubjectKind,
    Filter,
    OnEntry,
    OnExit,
    Tracked,
    TimeBased,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SegmentMemberships {
    Table,
    SegmentId,
    SubjectId,
    EnteredAt,
}

#[derive(DeriveIden)]
enum SegmentChanges {
    Table,
    Id,
    WorkspaceId,
    SegmentId,
    SubjectKind,
    SubjectId,
    Op,
    Reason,
    CauseId,
    At,
}

#[derive(DeriveIden)]
enum TagChanges {
    Table,
    CauseSegmentChangeId,
}

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
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Accounts::Id))
                    .col(big_integer(Accounts::WorkspaceId))
                    .col(string_null(Accounts::ExternalId))
                    .col(string(Accounts::Name))
                    .col(json_binary(Accounts::Attributes))
                    .col(timestamp_with_time_zone_null(Accounts::LastActivityAt))
                    .col(timestamp_with_time_zone(Accounts::CreatedAt))
                    .col(timestamp_with_time_zone(Accounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Accounts::Table, Accounts::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Users::Id))
                    .col(big_integer(Users::WorkspaceId))
                    .col(string_null(Users::ExternalId))
                    .col(string(Users::Email))
                    .col(string_null(Users::FirstName))
                    .col(string_null(Users::LastName))
                    .col(big_integer_null(Users::AccountId))
                    .col(json_binary(Users::Attributes))
                    .col(timestamp_with_time_zone_null(Users::LastSeenAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Users::Table, Users::AccountId)
                            .to(Accounts::Table, Accounts::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // Upsert keys, and the lookups `account(externalId)`, `user(email|externalId)`.
        // Paging is by (workspace_id, id): the unique indexes below start with
        // workspace_id, and a plain one serves the unfiltered lists.
        let indexes = [
            Index::create()
                .name("accounts_workspace_external_id")
                .table(Accounts::Table)
                .col(Accounts::WorkspaceId)
                .col(Accounts::ExternalId)
                .unique()
                .to_owned(),
            Index::create()
                .name("accounts_workspace_id")
                .table(Accounts::Table)
                .col(Accounts::WorkspaceId)
                .col(Accounts::Id)
                .to_owned(),
            Index::create()
                .name("users_workspace_email")
                .table(Users::Table)
                .col(Users::WorkspaceId)
                .col(Users::Email)
                .unique()
                .to_owned(),
            Index::create()
                .name("users_workspace_external_id")
                .table(Users::Table)
                .col(Users::WorkspaceId)
                .col(Users::ExternalId)
                .unique()
                .to_owned(),
            Index::create()
                .name("users_workspace_id")
                .table(Users::Table)
                .col(Users::WorkspaceId)
                .col(Users::Id)
                .to_owned(),
            Index::create()
                .name("users_account")
                .table(Users::Table)
                .col(Users::AccountId)
                .col(Users::Id)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum Accounts {
    Table,
    Id,
    WorkspaceId,
    ExternalId,
    Name,
    Attributes,
    LastActivityAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    WorkspaceId,
    ExternalId,
    Email,
    FirstName,
    LastName,
    AccountId,
    Attributes,
    LastSeenAt,
    CreatedAt,
    UpdatedAt,
}

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
                    .table(Webhooks::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Webhooks::Id))
                    .col(big_integer(Webhooks::WorkspaceId))
                    .col(text(Webhooks::Url))
                    .col(json_binary(Webhooks::Events))
                    .col(json_binary(Webhooks::Tags))
                    .col(boolean(Webhooks::Enabled))
                    .col(text_null(Webhooks::Description))
                    .col(string(Webhooks::Secret))
                    .col(string_null(Webhooks::PreviousSecret))
                    .col(timestamp_with_time_zone_null(
                        Webhooks::PreviousSecretExpiresAt,
                    ))
                    .col(timestamp_with_time_zone(Webhooks::CreatedAt))
                    .col(timestamp_with_time_zone(Webhooks::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Webhooks::Table, Webhooks::WorkspaceId)
                            .to(Workspaces::Table, Workspaces::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    .col(big_integer(WebhookDeliveries::WorkspaceId))
                    .col(big_integer(WebhookDeliveries::WebhookId))
                    .col(string_len(WebhookDeliveries::MessageId, 64))
                    .col(string_len(WebhookDeliveries::EventType, 32))
                    .col(json_binary(WebhookDeliveries::Payload))
                    .col(string_len_null(WebhookDeliveries::SubjectKind, 8))
                    .col(big_integer_null(WebhookDeliveries::SubjectId))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::WebhookId)
                            .to(Webhooks::Table, Webhooks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let indexes = [
            // a workspace's webhooks, and the enabled ones of the outbox's workspaces
            Index::create()
                .name("webhooks_workspace")
                .table(Webhooks::Table)
                .col(Webhooks::WorkspaceId)
                .col(Webhooks::Id)
                .to_owned(),
            // the dispatcher's scan: pending deliveries due by now
            Index::create()
                .name("webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .col(WebhookDeliveries::WebhookId)
                .to_owned(),
            // one webhook's deliveries, newest first (the delivery log, replay)
            Index::create()
                .name("webhook_deliveries_webhook")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::WebhookId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
            // a subject's earlier pending delivery to the same webhook (order per subject)
            Index::create()
                .name("webhook_deliveries_subject")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::WebhookId)
                .col(WebhookDeliveries::SubjectKind)
                .col(WebhookDeliveries::SubjectId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
            // the webhook-id header names one message
            Index::create()
                .name("webhook_deliveries_message")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::MessageId)
                .unique()
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Webhooks {
    Table,
    Id,
    WorkspaceId,
    Url,
    Events,
    Tags,
    Enabled,
    Description,
    Secret,
    PreviousSecret,
    PreviousSecretExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    WorkspaceId,
    WebhookId,
    MessageId,
    EventType,
    Payload,
    SubjectKind,
    SubjectId,
    Status,
    Attempts,
    LastStatusCode,
    LastError,
    NextAttemptAt,
    DeliveredAt,
    CreatedAt,
}

//! Delivery rows from the outbox. The automation worker calls these in the
//! transaction that marks its events done, so a change that commits is
//! delivered at least once and a rolled-back one never; a subject's events
//! are handled in order, so their deliveries are written in order too.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DatabaseTransaction};
use tokio::sync::Notify;

use std::collections::{BTreeSet, HashMap};

use entity::{
    account, automation_event, segment, tag, tag_change, user, webhook, webhook_delivery,
};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use super::payload::{self, Cause, Subject, TagEvent};
use super::{EventType, events_of, signature, wants};
use crate::automation::listener::{OutboxListener, ScriptFailure};
use crate::db::find_many_in_workspace;
use crate::outbox;
use crate::subjects::SubjectKind;
use crate::vocab::{DeliveryStatus, EventKind, Source};

/// The event types the enabled webhooks of a workspace ask for (the worker
/// keeps the outbox events of these types for [`from_outbox`]).
pub async fn listened(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<BTreeSet<EventType>, DbErr> {
    Ok(enabled(db, &[workspace_id])
        .await?
        .iter()
        .flat_map(events_of)
        .collect())
}

async fn enabled(
    db: &impl ConnectionTrait,
    workspace_ids: &[i64],
) -> Result<Vec<webhook::Model>, DbErr> {
    webhook::Entity::find()
        .filter(webhook::Column::WorkspaceId.is_in(workspace_ids.iter().copied()))
        .filter(webhook::Column::Enabled.eq(true))
        .all(db)
        .await
}

/// A delivery row to write.
fn row(
    webhook: &webhook::Model,
    event_type: &str,
    body: Value,
    subject: Option<(SubjectKind, i64)>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<webhook_delivery::ActiveModel, DbErr> {
    let message_id = signature::new_message_id().map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(webhook_delivery::ActiveModel {
        workspace_id: Set(webhook.workspace_id),
        webhook_id: Set(webhook.id),
        message_id: Set(message_id),
        event_type: Set(event_type.to_owned()),
        payload: Set(body),
        subject_kind: Set(subject.map(|(k, _)| k)),
        subject_id: Set(subject.map(|(_, id)| id)),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        last_status_code: Set(None),
        last_error: Set(None),
        next_attempt_at: Set(Some(now)),
        delivered_at: Set(None),
        created_at: Set(now),
        ..Default::default()
    })
}

async fn insert(
    db: &impl ConnectionTrait,
    rows: Vec<webhook_delivery::ActiveModel>,
) -> Result<usize, DbErr> {
    let count = rows.len();
    // Bounded statements: a few columns per row, well under the parameter caps.
    for chunk in rows.chunks(500) {
        webhook_delivery::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    if count > 0 {
        outbox::announce(db, outbox::Queue::Webhooks).await?;
    }
    Ok(count)
}

/// The subjects of a workspace as receivers see them, by (kind, id);
/// deleted ones are absent.
async fn subjects(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    wanted: &[(SubjectKind, i64)],
) -> Result<HashMap<(SubjectKind, i64), Subject>, DbErr> {
    let ids = |kind| -> Vec<i64> {
        wanted
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .collect()
    };
    let mut found = HashMap::new();
    for u in
        find_many_in_workspace::<user::Entity>(db, workspace_id, &ids(SubjectKind::User)).await?
    {
        let name = [u.first_name.as_deref(), u.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        found.insert(
            (SubjectKind::User, u.id),
            Subject {
                kind: SubjectKind::User,
                id: u.id,
                email: Some(u.email),
                name: (!name.is_empty()).then_some(name),
                external_id: u.external_id,
            },
        );
    }
    for a in find_many_in_workspace::<account::Entity>(db, workspace_id, &ids(SubjectKind::Account))
        .await?
    {
        found.insert(
            (SubjectKind::Account, a.id),
            Subject {
                kind: SubjectKind::Account,
                id: a.id,
                email: None,
                name: Some(a.name),
                external_id: a.external_id,
            },
        );
    }
    Ok(found)
}

/// A subject, as loaded or (deleted since) with only its kind and id.
fn subject_or_bare(
    loaded: &HashMap<(SubjectKind, i64), Subject>,
    kind: SubjectKind,
    id: i64,
) -> Subject {
    loaded.get(&(kind, id)).cloned().unwrap_or(Subject {
        kind,
        id,
        email: None,
        name: None,
        external_id: None,
    })
}

/// Writes the deliveries of handled outbox events, in the events' order,
/// for every enabled webhook that wants them. Returns how many.
pub async fn from_outbox(
    db: &impl ConnectionTrait,
    events: &[&automation_event::Model],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut workspaces: Vec<i64> = events.iter().map(|e| e.workspace_id).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let hooks = enabled(db, &workspaces).await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let mut events: Vec<&automation_event::Model> = events
        .iter()
        .copied()
        .filter(|e| {
            let kind = EventType::from(e.kind);
            hooks
                .iter()
                .any(|h| h.workspace_id == e.workspace_id && events_of(h).contains(&kind))
        })
        .collect();
    if events.is_empty() {
        return Ok(0);
    }
    events.sort_by_key(|e| e.id);
    let mut rows = Vec::new();
    for workspace_id in workspaces {
        let events: Vec<&automation_event::Model> = events
            .iter()
            .copied()
            .filter(|e| e.workspace_id == workspace_id)
            .collect();
        if events.is_empty() {
            continue;
        }
        let hooks: Vec<&webhook::Model> = hooks
            .iter()
            .filter(|h| h.workspace_id == workspace_id)
            .collect();
        let tag_ids: Vec<i64> = events.iter().filter_map(|e| e.tag_id).collect();
        let segment_ids: Vec<i64> = events.iter().filter_map(|e| e.segment_id).collect();
        let change_ids: Vec<i64> = events
            .iter()
            .filter(|e| EventType::from(e.kind).is_tag_event())
            .filter_map(|e| e.change_id)
            .collect();
        let tags: HashMap<i64, String> =
            find_many_in_workspace::<tag::Entity>(db, workspace_id, &tag_ids)
                .await?
                .into_iter()
                .map(|t| (t.id, t.name))
                .collect();
        let segments: HashMap<i64, String> =
            find_many_in_workspace::<segment::Entity>(db, workspace_id, &segment_ids)
                .await?
                .into_iter()
                .map(|s| (s.id, s.name))
                .collect();
        let changes: HashMap<i64, tag_change::Model> =
            find_many_in_workspace::<tag_change::Entity>(db, workspace_id, &change_ids)
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
        let wanted: Vec<(SubjectKind, i64)> = events
            .iter()
            .map(|e| (e.subject_kind, e.subject_id))
            .collect();
        let loaded = subjects(db, workspace_id, &wanted).await?;
        for event in events {
            let kind = EventType::from(event.kind);
            let subject_kind = event.subject_kind;
            let subject = subject_or_bare(&loaded, subject_kind, event.subject_id);
            let tag_name = event
                .tag_id
                .and_then(|id| tags.get(&id))
                .map(String::as_str);
            let data = if kind.is_tag_event() {
                let change = event.change_id.and_then(|id| changes.get(&id));
                let cause = change.and_then(|c| {
                    c.cause_id
                        .map(Cause::TagChange)
                        .or(c.cause_segment_change_id.map(Cause::SegmentChange))
                });
                payload::tag_data(&TagEvent {
                    tag: tag_name.unwrap_or_default(),
                    subject: &subject,
                    source: change.map_or(Source::Manual, |c| c.source).as_str(),
                    actor: change.and_then(|c| c.actor.as_deref()),
                    cause,
                    change_id: event.change_id,
                    depth: event.depth,
                })
            } else {
                let segment_id = event.segment_id.unwrap_or_default();
                payload::segment_data(
                    segment_id,
                    segments.get(&segment_id).map(String::as_str),
                    &subject,
                    event.change_id,
                    event.depth,
                )
            };
            let body = payload::message(kind.wire_name(), event.created_at, data);
            for hook in hooks.iter().filter(|h| wants(h, kind, tag_name)) {
                rows.push(row(
                    hook,
                    kind.wire_name(),
                    body.clone(),
                    Some((subject_kind, event.subject_id)),
                    now,
                )?);
            }
        }
    }
    insert(db, rows).await
}

/// Writes `script.failed` deliveries for failed script runs, for every
/// enabled webhook that asks for them. Returns how many.
pub async fn script_failures(
    db: &impl ConnectionTrait,
    failures: &[ScriptFailure],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, DbErr> {
    if failures.is_empty() {
        return Ok(0);
    }
    let mut workspaces: Vec<i64> = failures.iter().map(|f| f.workspace_id).collect();
    workspaces.sort_unstable();
    workspaces.dedup();
    let hooks: Vec<webhook::Model> = enabled(db, &workspaces)
        .await?
        .into_iter()
        .filter(|h| wants(h, EventType::ScriptFailed, None))
        .collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let mut rows = Vec::new();
    for workspace_id in workspaces {
        let failures: Vec<&ScriptFailure> = failures
            .iter()
            .filter(|f| f.workspace_id == workspace_id)
            .collect();
        let wanted: Vec<(SubjectKind, i64)> = failures
            .iter()
            .map(|f| (f.subject_kind, f.subject_id))
            .collect();
        let loaded = subjects(db, workspace_id, &wanted).await?;
        for failure in failures {
            let subject = subject_or_bare(&loaded, failure.subject_kind, failure.subject_id);
            let kind = EventType::ScriptFailed.wire_name();
            let body = payload::message(
                kind,
                failure.at,
                payload::script_failed_data(failure, &subject),
            );
            for hook in hooks.iter().filter(|h| h.workspace_id == workspace_id) {
                rows.push(row(
                    hook,
                    kind,
                    body.clone(),
                    Some((failure.subject_kind, failure.subject_id)),
                    now,
                )?);
            }
        }
    }
    insert(db, rows).await
}

/// Writes one `webhook.ping` delivery (what `testWebhook` sends).
pub async fn ping(
    db: &impl ConnectionTrait,
    webhook: &webhook::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<webhook_delivery::Model, DbErr> {
    let body = payload::message(super::PING, now, payload::ping_data(webhook.id));
    let row = row(webhook, super::PING, body, None, now)?;
    let id = webhook_delivery::Entity::insert(row)
        .exec(db)
        .await?
        .last_insert_id;
    outbox::announce(db, outbox::Queue::Webhooks).await?;
    webhook_delivery::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the ping just written".into()))
}

/// The worker's listener: writes the deliveries of the events it completes
/// and wakes the dispatcher once they are committed.
pub struct WebhookListener {
    pub wake: Arc<Notify>,
}

#[async_trait::async_trait]
impl OutboxListener for WebhookListener {
    async fn kinds(
        &self,
        db: &DatabaseConnection,
        workspace_id: i64,
    ) -> Result<Vec<EventKind>, DbErr> {
        Ok(listened(db, workspace_id)
            .await?
            .into_iter()
            .filter_map(EventType::outbox_kind)
            .collect())
    }

    async fn handled(
        &self,
        txn: &DatabaseTransaction,
        events: &[&automation_event::Model],
        failures: &[ScriptFailure],
    ) -> Result<usize, DbErr> {
        let now = crate::time::now();
        Ok(from_outbox(txn, events, now).await? + script_failures(txn, failures, now).await?)
    }

    fn committed(&self) {
        self.wake.notify_one();
    }
}

//! Webhooks themselves: create, update, rotate the secret, delete, read.

use chrono::{DateTime, Utc};
use entity::webhook;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;

use super::target::{self, AllowList};
use super::{EventType, WebhookError, WebhookInput, signature};
use crate::db::find_in_workspace;
use crate::tags::TagError;
use crate::tags::name::{TagName, TagRules};
use crate::tags::pattern::TagPattern;

/// Most tag patterns one webhook may have.
pub const MAX_PATTERNS: usize = 100;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1_000;
/// How long the secret before a rotation keeps signing beside the new one.
pub const ROTATION_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A webhook with its secret, shown once (at creation and rotation).
#[derive(Debug, Clone)]
pub struct Created {
    pub webhook: webhook::Model,
    pub secret: String,
}

/// An input, checked.
struct Checked {
    url: String,
    events: Vec<EventType>,
    tags: Option<Vec<String>>,
    description: Option<Option<String>>,
}

/// Checks a tag pattern under the workspace's tag rules: `VIP`, `a/*`
/// (descendants of `a`), `Key: *` (any value of `Key`), as filters read
/// them; a `*` anywhere else is refused, since no filter would read it as a
/// wildcard. Returns the trimmed pattern.
pub fn check_pattern(raw: &str, rules: TagRules) -> Result<String, String> {
    let pattern = raw.trim();
    let named = match TagPattern::parse(pattern) {
        TagPattern::Exact(name) => name,
        TagPattern::Descendants(prefix) => &prefix[..prefix.len() - 1],
        TagPattern::AnyValue(prefix) => &prefix[..prefix.len() - 2],
    };
    if named.contains('*') {
        return Err(format!(
            "tag pattern {pattern:?}: `*` only ends a pattern, as in \"sports/*\" or \"Region: *\""
        ));
    }
    TagName::parse(named, rules).map_err(|e| format!("tag pattern {pattern:?}: {named:?} {e}"))?;
    Ok(pattern.to_owned())
}

async fn check_input(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    input: WebhookInput,
    allow: &AllowList,
) -> Result<Checked, WebhookError> {
    let url = target::check(&input.url, allow)
        .await
        .map_err(WebhookError::Invalid)?;
    let mut events = input.events;
    events.sort();
    events.dedup();
    if events.is_empty() {
        return Err(WebhookError::Invalid(
            "a webhook needs at least one event type".into(),
        ));
    }
    let tags = match input.tags {
        None => None,
        Some(patterns) => {
            if patterns.len() > MAX_PATTERNS {
                return Err(WebhookError::Invalid(format!(
                    "a webhook may have at most {MAX_PATTERNS} tag patterns, not {}",
                    patterns.len()
                )));
            }
            let rules = crate::tags::store::rules(db, workspace_id)
                .await
                .map_err(|e| match e {
                    TagError::Db(db) => WebhookError::Db(db),
                    other => WebhookError::Invalid(other.to_string()),
                })?;
            let mut checked = Vec::with_capacity(patterns.len());
            for pattern in &patterns {
                let pattern = check_pattern(pattern, rules).map_err(WebhookError::Invalid)?;
                if !checked.contains(&pattern) {
                    checked.push(pattern);
                }
            }
            Some(checked)
        }
    };
    let description = match input.description {
        None => None,
        Some(text) => {
            let text = text.trim();
            if text.chars().count() > MAX_DESCRIPTION {
                return Err(WebhookError::Invalid(format!(
                    "the description is longer than {MAX_DESCRIPTION} characters"
                )));
            }
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(WebhookError::Invalid(
                    "the description has control characters".into(),
                ));
            }
            Some((!text.is_empty()).then(|| text.to_owned()))
        }
    };
    Ok(Checked {
        url: url.to_string(),
        events,
        tags,
        description,
    })
}

fn events_json(events: &[EventType]) -> serde_json::Value {
    json!(events)
}

/// Creates a webhook (enabled unless the input says otherwise) with a new secret.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: i64,
    input: WebhookInput,
    allow: &AllowList,
    now: DateTime<Utc>,
) -> Result<Created, WebhookError> {
    let enabled = input.enabled.unwrap_or(true);
    let checked = check_input(db, workspace_id, input, allow).await?;
    let secret = signature::new_secret()?;
    let txn = crate::db::begin_write(db).await?;
    let webhook = webhook::ActiveModel {
        workspace_id: Set(workspace_id),
        url: Set(checked.url),
        events: Set(events_json(&checked.events)),
        tags: Set(json!(checked.tags.unwrap_or_default())),
        enabled: Set(enabled),
        description: Set(checked.description.flatten()),
        secret: Set(secret.clone()),
        previous_secret: Set(None),
        previous_secret_expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await?;
    txn.commit().await?;
    Ok(Created { webhook, secret })
}

/// Replaces a webhook's URL and events; its tags, enabled flag and
/// description too when the input gives them.
pub async fn update(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
    input: WebhookInput,
    allow: &AllowList,
    now: DateTime<Utc>,
) -> Result<webhook::Model, WebhookError> {
    let current = get(db, workspace_id, id).await?;
    let enabled = input.enabled;
    let checked = check_input(db, workspace_id, input, allow).await?;
    let mut active: webhook::ActiveModel = current.into();
    active.url = Set(checked.url);
    active.events = Set(events_json(&checked.events));
    if let Some(tags) = checked.tags {
        active.tags = Set(json!(tags));
    }
    if let Some(enabled) = enabled {
        active.enabled = Set(enabled);
    }
    if let Some(description) = checked.description {
        active.description = Set(description);
    }
    active.updated_at = Set(now);
    let txn = crate::db::begin_write(db).await?;
    let webhook = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(webhook)
}

/// A new secret; the old one keeps signing beside it for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Created, WebhookError> {
    let current = get(db, workspace_id, id).await?;
    let secret = signature::new_secret()?;
    let previous = current.secret.clone();
    let mut active: webhook::ActiveModel = current.into();
    active.secret = Set(secret.clone());
    active.previous_secret = Set(Some(previous));
    active.previous_secret_expires_at = Set(Some(now + ROTATION_OVERLAP));
    active.updated_at = Set(now);
    let txn = crate::db::begin_write(db).await?;
    let webhook = active.update(&*txn).await?;
    txn.commit().await?;
    Ok(Created { webhook, secret })
}

/// Deletes a webhook and its deliveries; `false` when there was none.
pub async fn delete(
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
) -> Result<bool, WebhookError> {
    let txn = crate::db::begin_write(db).await?;
    entity::webhook_delivery::Entity::delete_many()
        .filter(entity::webhook_delivery::Column::WorkspaceId.eq(workspace_id))
        .filter(entity::webhook_delivery::Column::WebhookId.eq(id))
        .exec(&*txn)
        .await?;
    let deleted = webhook::Entity::delete_many()
        .filter(webhook::Column::WorkspaceId.eq(workspace_id))
        .filter(webhook::Column::Id.eq(id))
        .exec(&*txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(deleted > 0)
}

/// One webhook of the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<webhook::Model>, WebhookError> {
    Ok(find_in_workspace::<webhook::Entity>(db, workspace_id, id).await?)
}

/// One webhook of the workspace, or NOT_FOUND.
pub async fn get(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<webhook::Model, WebhookError> {
    find(db, workspace_id, id)
        .await?
        .ok_or(WebhookError::NotFound("webhook"))
}

/// The workspace's webhooks, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<webhook::Model>, WebhookError> {
    Ok(webhook::Entity::find()
        .filter(webhook::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(webhook::Column::Id)
        .all(db)
        .await?)
}

/// The secrets that sign a message now: the current one, and the one
/// before a rotation until it expires.
pub fn signing_secrets(webhook: &webhook::Model, now: DateTime<Utc>) -> Vec<&str> {
    let mut secrets = vec![webhook.secret.as_str()];
    if let (Some(previous), Some(until)) =
        (&webhook.previous_secret, webhook.previous_secret_expires_at)
        && until > now
    {
        secrets.push(previous);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let rules = TagRules {
            lowercase: false,
            max_depth: 3,
        };
        let cases = [
            ("VIP", Ok("VIP")),
            ("  Region: * ", Ok("Region: *")),
            ("sports/*", Ok("sports/*")),
            ("a/b/c/*", Ok("a/b/c/*")),
            ("*", Err("`*` only ends a pattern")),
            ("sp*rts", Err("`*` only ends a pattern")),
            ("", Err("is empty")),
            ("a/b/c/d", Err("levels")),
            ("a//b", Err("")),
        ];
        for (raw, expected) in cases {
            match (check_pattern(raw, rules), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(got), Err(want)) => assert!(got.contains(want), "{raw:?}: {got}"),
                (got, want) => panic!("{raw:?}: {got:?}, expected {want:?}"),
            }
        }
    }
}

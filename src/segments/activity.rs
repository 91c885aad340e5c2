//! Tracked events (`trackEvent`): what `events(name, 30d)` and
//! `active_days(30d)` count. Tracking one also moves the subject's
//! `lastSeenAt` (users) or `lastActivityAt` (accounts) forward.

use chrono::{DateTime, Utc};
use entity::event;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, Set};

use super::SegmentError;
use super::membership::{self, Changed, Reason};
use crate::db::begin_write;
use crate::tags::write::subject_table;
use crate::vocab::SubjectKind;

/// Longest event name, in characters.
pub const MAX_NAME: usize = 128;

/// Largest `properties` object, in bytes of JSON.
pub const MAX_PROPERTIES: usize = 16 * 1024;

/// An event as a client reports it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub name: String,
    /// When it happened (default: now).
    pub at: Option<DateTime<Utc>>,
    /// A JSON object, or nothing.
    pub properties: Option<serde_json::Value>,
}

/// Records an event of a subject of the workspace and re-evaluates its
/// tracked segments. `now` (the segments' clock) is the default time of the
/// event. Returns false when the subject is not in the workspace.
pub async fn track(
    db: &DatabaseConnection,
    workspace_id: i64,
    (kind, subject_id): (SubjectKind, i64),
    event: NewEvent,
    now: DateTime<Utc>,
) -> Result<bool, SegmentError> {
    let NewEvent {
        name,
        at,
        properties,
    } = event;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(SegmentError::Invalid(format!(
            "an event name has 1 to {MAX_NAME} characters, none of them control characters"
        )));
    }
    let properties = match properties {
        None | Some(serde_json::Value::Null) => serde_json::json!({}),
        Some(object @ serde_json::Value::Object(_)) => object,
        Some(_) => {
            return Err(SegmentError::Invalid(
                "properties must be a JSON object".into(),
            ));
        }
    };
    if properties.to_string().len() > MAX_PROPERTIES {
        return Err(SegmentError::Invalid(format!(
            "properties hold at most {MAX_PROPERTIES} bytes of JSON"
        )));
    }
    let at = at.map_or(now, |at| {
        use chrono::SubsecRound;
        at.trunc_subsecs(6)
    });
    let txn = begin_write(db).await?;
    // Moves lastSeenAt / lastActivityAt forward (never back), and tells
    // whether the subject is in the workspace.
    let column = Alias::new(match kind {
        SubjectKind::User => "last_seen_at",
        SubjectKind::Account => "last_activity_at",
    });
    let table = Alias::new(subject_table(kind));
    let update = Query::update()
        .table(table)
        .value(
            column.clone(),
            Expr::case(
                Expr::col(column.clone())
                    .is_null()
                    .or(Expr::col(column.clone()).lt(at)),
                Expr::val(at),
            )
            .finally(Expr::col(column.clone())),
        )
        .and_where(Expr::col("workspace_id").eq(workspace_id))
        .and_where(Expr::col("id").eq(subject_id))
        .to_owned();
    if txn.execute(&update).await?.rows_affected() == 0 {
        return Ok(false);
    }
    event::ActiveModel {
        workspace_id: Set(workspace_id),
        subject_kind: Set(kind),
        subject_id: Set(subject_id),
        name: Set(name.to_owned()),
        at: Set(at),
        properties: Set(properties),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let changed = [Changed {
        kind,
        id: subject_id,
        cause: None,
    }];
    membership::reevaluate(&txn, workspace_id, &changed, Reason::Event, 0, now).await?;
    txn.commit().await?;
    Ok(true)
}

//! What other domains learn from the outbox: a listener the worker calls
//! in the transaction that completes a batch's events (webhooks write
//! their deliveries there), so what it writes commits with the events or
//! not at all.

use entity::automation_event;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};

use crate::subjects::SubjectKind;
use crate::vocab::EventKind;

/// A failed script run, as listeners hear of it.
#[derive(Debug, Clone)]
pub struct ScriptFailure {
    pub workspace_id: i64,
    pub script_id: i64,
    pub script_name: String,
    pub script_version: i32,
    pub error: String,
    /// The outbox kind of the event the script heard (TAG_ADDED, ...).
    pub event_kind: EventKind,
    pub tag: Option<String>,
    pub segment: Option<String>,
    pub subject_kind: SubjectKind,
    pub subject_id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Hears the outbox's events as the worker completes them.
#[async_trait::async_trait]
pub trait OutboxListener: Send + Sync {
    /// The event kinds it wants to hear in a workspace: the worker does not
    /// complete pending events of these kinds in bulk when no script hears
    /// them, but hands each to [`OutboxListener::handled`].
    async fn kinds(
        &self,
        db: &DatabaseConnection,
        workspace_id: i64,
    ) -> Result<Vec<EventKind>, DbErr>;

    /// Called in the transaction that completes `events` (and records the
    /// `failures` among their script runs); returns how many rows it wrote.
    async fn handled(
        &self,
        txn: &DatabaseTransaction,
        events: &[&automation_event::Model],
        failures: &[ScriptFailure],
    ) -> Result<usize, DbErr>;

    /// Called after that transaction committed, when `handled` wrote rows.
    fn committed(&self);
}

//! The automation worker: a loop over [`Worker::try_execute_one`].
//!
//! Each step claims one event from the outbox, runs the matching hook of
//! every enabled script of the event's workspace on a snapshot of the
//! subject, and applies the successful runs' plans in one transaction that
//! also records the runs and marks the event done; the tag changes it makes
//! write the next events, one step deeper. An error leaves the event to be
//! retried with backoff, and failed after the last attempt.

use std::sync::Arc;
use std::time::Duration;

use entity::automation_event;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::Notify;
use tracing::Instrument;

use super::apply::{Run, apply_runs};
use super::outbox::{self, status};
use super::script::HookEvent;
use super::scripts::{self, Scripts};
use super::{AutomationError, hook_of, snapshot};
use crate::db::begin_write;
use crate::subjects::SubjectKind;
use crate::tags::store;

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Deepest cascade of automated changes; deeper ones stop with an error.
    pub max_depth: i32,
    /// Attempts before an event is kept as failed.
    pub max_attempts: i32,
    /// How often to look for work when nothing wakes the worker.
    pub poll_interval: Duration,
    /// Runs kept per script; older ones are deleted.
    pub runs_kept: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            max_depth: 8,
            max_attempts: 5,
            poll_interval: Duration::from_secs(1),
            runs_kept: 1000,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An event was handled (or its failure recorded).
    Done,
    /// No event was due.
    Empty,
}

/// The worker: shares the scripts (and their compiled cache) with the server.
#[derive(Clone)]
pub struct Worker {
    pub db: DatabaseConnection,
    pub scripts: Arc<Scripts>,
    pub wake: Arc<Notify>,
    pub settings: WorkerSettings,
}

impl Worker {
    /// Handles one due event, if any.
    pub async fn try_execute_one(&self) -> Result<Outcome, AutomationError> {
        let Some(event) = outbox::claim(&self.db).await? else {
            return Ok(Outcome::Empty);
        };
        let span = tracing::info_span!("automation_event", id = event.id, kind = %event.kind, depth = event.depth);
        match self.handle(&event).instrument(span).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(event = event.id, error = %e, "automation event failed; will retry");
                outbox::fail(&self.db, &event, &e.to_string(), self.settings.max_attempts).await?;
            }
        }
        Ok(Outcome::Done)
    }

    async fn handle(&self, event: &automation_event::Model) -> Result<(), AutomationError> {
        let Some(hook) = hook_of(&event.kind) else {
            return self.finish_without_runs(event).await;
        };
        let listening: Vec<_> = scripts::enabled(&self.db, event.workspace_id)
            .await?
            .into_iter()
            .filter_map(|script| {
                let compiled = self.scripts.compiled(&script).ok()?;
                compiled.has_hook(hook).then_some((script, compiled))
            })
            .collect();
        if listening.is_empty() {
            // Nobody listens: this and every other pending event of the kind in the workspace are done.
            return self.skip_unheard(event).await;
        }
        let kind = if event.subject_kind == SubjectKind::Account.as_str() {
            SubjectKind::Account
        } else {
            SubjectKind::User
        };
        let Some(subject) =
            snapshot::load(&self.db, event.workspace_id, kind, event.subject_id).await?
        else {
            return self.finish_without_runs(event).await; // the subject was deleted
        };
        let tag = match event.tag_id {
            Some(tag_id) => store::find_many(&self.db, event.workspace_id, &[tag_id])
                .await
                .map_err(|e| AutomationError::Invalid(e.to_string()))?
                .pop()
                .map(|t| t.name),
            None => None,
        };
        let source = match event.change_id {
            Some(change_id) => crate::tags::history::find(&self.db, event.workspace_id, change_id)
                .await
                .map_err(|e| AutomationError::Invalid(e.to_string()))?
                .map(|c| c.source)
                .unwrap_or_else(|| "MANUAL".into()),
            None => "TRIGGER".into(),
        };
        let hook_event = HookEvent {
            hook,
            tag,
            segment: None,
            source,
            depth: Ord::max(event.depth, 0) as u32,
            subject: subject.clone(),
        };
        let mut runs = Vec::with_capacity(listening.len());
        for (script, compiled) in &listening {
            let scripts = Arc::clone(&self.scripts);
            let compiled = Arc::clone(compiled);
            let hook_event = hook_event.clone();
            let outcome =
                tokio::task::spawn_blocking(move || scripts.engine.run(&compiled, &hook_event))
                    .await
                    .map_err(|e| AutomationError::Invalid(format!("script thread failed: {e}")))?;
            runs.push(Run { script, outcome });
        }
        let too_deep =
            (event.depth + 1 > self.settings.max_depth).then_some(self.settings.max_depth);
        let txn = begin_write(&self.db).await?;
        apply_runs(
            &txn,
            event,
            &subject,
            runs,
            too_deep,
            self.settings.runs_kept,
        )
        .await?;
        outbox::complete(&txn, event).await?;
        txn.commit().await?;
        self.wake.notify_one(); // the changes may have written new events
        Ok(())
    }

    async fn finish_without_runs(
        &self,
        event: &automation_event::Model,
    ) -> Result<(), AutomationError> {
        let txn = begin_write(&self.db).await?;
        outbox::complete(&txn, event).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn skip_unheard(&self, event: &automation_event::Model) -> Result<(), AutomationError> {
        let txn = begin_write(&self.db).await?;
        outbox::complete(&txn, event).await?;
        let update = Query::update()
            .table(automation_event::Entity)
            .value(automation_event::Column::Status, status::DONE)
            .and_where(Expr::col(automation_event::Column::WorkspaceId).eq(event.workspace_id))
            .and_where(Expr::col(automation_event::Column::Kind).eq(event.kind.as_str()))
            .and_where(Expr::col(automation_event::Column::Status).eq(status::PENDING))
            .to_owned();
        txn.execute(&update).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Runs until `shutdown` resolves: handles events while there are some,
    /// then sleeps until woken (a change was committed) or the poll interval passes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let step = tokio::select! {
                _ = &mut shutdown => return,
                step = self.try_execute_one() => step,
            };
            let pause = match step {
                Ok(Outcome::Done) => {
                    failures = 0;
                    continue;
                }
                Ok(Outcome::Empty) => self.settings.poll_interval,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "automation worker step failed");
                    Duration::from_millis(100 * 2u64.pow(Ord::min(failures, 6)))
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

//! The scripts service: upload, enable, disable, delete. Each keeps the
//! segments' stored membership in step with what the enabled scripts
//! listen to, whichever door the change came through. And the dry run.

use entity::script;

use super::AppState;
use crate::automation::AutomationError;
use crate::automation::script::{HookEvent, HookKind, RunOutcome};
use crate::automation::snapshot;
use crate::error::{ApiError, ApiResult};
use crate::subjects::SubjectKind;
use crate::vocab::Source;

/// The event a dry run pretends happened.
#[derive(Debug, Clone)]
pub struct DryRunEvent {
    pub hook: HookKind,
    /// The account or user the event is about.
    pub subject: (SubjectKind, i64),
    /// The tag added or removed (tag events).
    pub tag: Option<String>,
    /// The segment entered or left (segment events).
    pub segment_id: Option<i64>,
}

impl AppState {
    /// Compiles and stores a script (an existing name gets a new version),
    /// then tracks the segments if it listens to segment events.
    pub async fn upload_script(
        &self,
        workspace_id: i64,
        name: &str,
        source: &str,
        enabled: Option<bool>,
    ) -> Result<script::Model, AutomationError> {
        let stored = self
            .scripts
            .upload(&self.db, workspace_id, name, source, enabled)
            .await?;
        self.sync_segment_tracking(workspace_id).await?;
        Ok(stored)
    }

    /// Turns a script on or off, and segment tracking with it.
    pub async fn set_script_enabled(
        &self,
        workspace_id: i64,
        id: i64,
        enabled: bool,
    ) -> Result<script::Model, AutomationError> {
        let updated = self
            .scripts
            .set_enabled(&self.db, workspace_id, id, enabled)
            .await?;
        self.sync_segment_tracking(workspace_id).await?;
        Ok(updated)
    }

    /// Deletes a script and its runs; segments nobody listens to any more
    /// stop keeping a stored membership (unless they have triggers).
    pub async fn delete_script(&self, workspace_id: i64, id: i64) -> Result<(), AutomationError> {
        self.scripts.delete(&self.db, workspace_id, id).await?;
        self.sync_segment_tracking(workspace_id).await
    }

    /// Dry run: compiles `source` and runs its hook for the event against the
    /// real subject, applying nothing. A syntax error is BAD_USER_INPUT with
    /// its position; an unknown subject or segment is NOT_FOUND.
    pub async fn dry_run_script(
        &self,
        workspace_id: i64,
        source: &str,
        event: DryRunEvent,
    ) -> ApiResult<RunOutcome> {
        let compiled = self
            .scripts
            .engine
            .compile(source)
            .map_err(AutomationError::Compile)?;
        let (kind, id) = event.subject;
        let subject = snapshot::load(&self.db, workspace_id, kind, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such subject"))?;
        let segment = match event.segment_id {
            Some(id) => Some(
                crate::segments::store::find(&self.db, workspace_id, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("no such segment"))?
                    .name,
            ),
            None => None,
        };
        let segment_event = matches!(
            event.hook,
            HookKind::SegmentEntered | HookKind::SegmentExited
        );
        let hook_event = HookEvent {
            hook: event.hook,
            tag: event.tag,
            segment,
            source: if segment_event {
                Source::Trigger
            } else {
                Source::Manual
            }
            .as_str()
            .into(),
            depth: 0,
            subject,
        };
        let scripts = std::sync::Arc::clone(&self.scripts);
        let outcome =
            tokio::task::spawn_blocking(move || scripts.engine.run(&compiled, &hook_event))
                .await
                .map_err(AutomationError::Thread)?;
        Ok(outcome)
    }

    /// Whether an enabled script of the workspace listens to segment events
    /// (then every segment keeps a stored membership).
    pub async fn scripts_listen_to_segments(
        &self,
        workspace_id: i64,
    ) -> Result<bool, AutomationError> {
        self.scripts
            .listens_to_segments(&self.db, workspace_id)
            .await
    }

    /// After a script change: segments keep a stored membership while a
    /// script listens to segment events (or they have triggers).
    async fn sync_segment_tracking(&self, workspace_id: i64) -> Result<(), AutomationError> {
        let listened = self.scripts_listen_to_segments(workspace_id).await?;
        crate::segments::store::sync_tracking(&self.db, workspace_id, listened, self.clock.now())
            .await?;
        Ok(())
    }
}

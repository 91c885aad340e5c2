//! The scripts service: upload, enable, disable, delete. Each keeps the
//! segments' stored membership in step with what the enabled scripts
//! listen to, whichever door the change came through.

use entity::script;

use crate::app::AppState;
use crate::automation::AutomationError;

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

//! Scripts: upload (compile first), versions, enabling, deletion, runs, and
//! the cache of compiled ASTs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use entity::{script, script_run};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::AutomationError;
use super::script::{CompiledScript, ScriptEngine};
use crate::db::{begin_write, find_in_workspace, find_many_in_workspace};
use crate::subjects::clean_text;
use crate::subjects::page::{Direction, Page, PageRequest, fetch};
use crate::time::now;

/// The sandboxed engine and the compiled scripts, shared by the server and
/// its worker. A script is compiled once per version, never per event.
pub struct Scripts {
    pub engine: ScriptEngine,
    cache: RwLock<HashMap<i64, (i32, Arc<CompiledScript>)>>,
}

impl Scripts {
    pub fn new(engine: ScriptEngine) -> Self {
        Scripts {
            engine,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The compiled form of a stored script (compiled on first use of a version).
    pub fn compiled(&self, script: &script::Model) -> Result<Arc<CompiledScript>, AutomationError> {
        if let Ok(cache) = self.cache.read()
            && let Some((version, compiled)) = cache.get(&script.id)
            && *version == script.version
        {
            return Ok(Arc::clone(compiled));
        }
        let compiled = Arc::new(
            self.engine
                .compile(&script.source)
                .map_err(AutomationError::Compile)?,
        );
        self.remember(script, Arc::clone(&compiled));
        Ok(compiled)
    }

    fn remember(&self, script: &script::Model, compiled: Arc<CompiledScript>) {
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(script.id, (script.version, compiled));
        }
    }

    fn forget(&self, id: i64) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(&id);
        }
    }

    /// Whether an enabled script of the workspace defines a segment hook
    /// (then every segment keeps a stored membership).
    pub async fn listens_to_segments(
        &self,
        db: &impl ConnectionTrait,
        workspace_id: i64,
    ) -> Result<bool, AutomationError> {
        use super::script::HookKind;
        Ok(enabled(db, workspace_id).await?.iter().any(|script| {
            self.compiled(script).is_ok_and(|compiled| {
                compiled.has_hook(HookKind::SegmentEntered)
                    || compiled.has_hook(HookKind::SegmentExited)
            })
        }))
    }

    /// Compiles and stores a script; an existing name gets a new version.
    pub async fn upload(
        &self,
        db: &DatabaseConnection,
        workspace_id: i64,
        name: &str,
        source: &str,
        enabled: Option<bool>,
    ) -> Result<script::Model, AutomationError> {
        let name =
            clean_text("name", name, 100).map_err(|e| AutomationError::Invalid(e.to_string()))?;
        let compiled = Arc::new(
            self.engine
                .compile(source)
                .map_err(AutomationError::Compile)?,
        );
        let txn = begin_write(db).await?;
        let existing = script::Entity::find()
            .filter(script::Column::WorkspaceId.eq(workspace_id))
            .filter(script::Column::Name.eq(&name))
            .one(&txn)
            .await?;
        let at = now();
        let stored = match existing {
            Some(current) => {
                let version = current.version + 1;
                let keep_enabled = current.enabled;
                let mut active = current.into_active_model();
                active.version = Set(version);
                active.source = Set(source.to_owned());
                active.enabled = Set(enabled.unwrap_or(keep_enabled));
                active.updated_at = Set(at);
                active.update(&txn).await?
            }
            None => {
                script::ActiveModel {
                    workspace_id: Set(workspace_id),
                    name: Set(name),
                    version: Set(1),
                    source: Set(source.to_owned()),
                    enabled: Set(enabled.unwrap_or(true)),
                    created_at: Set(at),
                    updated_at: Set(at),
                    ..Default::default()
                }
                .insert(&txn)
                .await?
            }
        };
        txn.commit().await?;
        self.remember(&stored, compiled);
        Ok(stored)
    }

    /// Turns a script on or off.
    pub async fn set_enabled(
        &self,
        db: &DatabaseConnection,
        workspace_id: i64,
        id: i64,
        enabled: bool,
    ) -> Result<script::Model, AutomationError> {
        let txn = begin_write(db).await?;
        let current = find(&txn, workspace_id, id)
            .await?
            .ok_or(AutomationError::NotFound("script"))?;
        let mut active = current.into_active_model();
        active.enabled = Set(enabled);
        active.updated_at = Set(now());
        let updated = active.update(&txn).await?;
        txn.commit().await?;
        Ok(updated)
    }

    /// Deletes a script and its runs.
    pub async fn delete(
        &self,
        db: &DatabaseConnection,
        workspace_id: i64,
        id: i64,
    ) -> Result<(), AutomationError> {
        let txn = begin_write(db).await?;
        if find(&txn, workspace_id, id).await?.is_none() {
            return Err(AutomationError::NotFound("script"));
        }
        script_run::Entity::delete_many()
            .filter(script_run::Column::ScriptId.eq(id))
            .exec(&txn)
            .await?;
        script::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        self.forget(id);
        Ok(())
    }
}

/// One script of the workspace.
pub async fn find(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<script::Model>, AutomationError> {
    Ok(find_in_workspace::<script::Entity>(db, workspace_id, id).await?)
}

/// Scripts of the workspace by id (for DataLoaders).
pub async fn find_many(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<script::Model>, AutomationError> {
    Ok(find_many_in_workspace::<script::Entity>(db, workspace_id, ids).await?)
}

/// Every script of the workspace, by name.
pub async fn list(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<script::Model>, AutomationError> {
    Ok(script::Entity::find()
        .filter(script::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(script::Column::Name)
        .all(db)
        .await?)
}

/// The enabled scripts of the workspace, in id order (the order they run in).
pub async fn enabled(
    db: &impl ConnectionTrait,
    workspace_id: i64,
) -> Result<Vec<script::Model>, AutomationError> {
    Ok(script::Entity::find()
        .filter(script::Column::WorkspaceId.eq(workspace_id))
        .filter(script::Column::Enabled.eq(true))
        .order_by_asc(script::Column::Id)
        .all(db)
        .await?)
}

/// One run of the workspace.
pub async fn find_run(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<script_run::Model>, AutomationError> {
    Ok(find_in_workspace::<script_run::Entity>(db, workspace_id, id).await?)
}

/// A page of a script's runs, newest first.
pub async fn runs(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    script_id: i64,
    page: PageRequest,
) -> Result<Page<script_run::Model>, AutomationError> {
    Ok(fetch(
        db,
        runs_of(workspace_id, script_id),
        script_run::Column::Id,
        Direction::NewestFirst,
        page,
    )
    .await?)
}

fn runs_of(workspace_id: i64, script_id: i64) -> sea_orm::Select<script_run::Entity> {
    script_run::Entity::find()
        .filter(script_run::Column::WorkspaceId.eq(workspace_id))
        .filter(script_run::Column::ScriptId.eq(script_id))
}

pub async fn count_runs(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    script_id: i64,
) -> Result<u64, AutomationError> {
    Ok(runs_of(workspace_id, script_id).count(db).await?)
}

/// How many of a script's runs failed at `since` or later.
pub async fn count_failed_runs(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    script_id: i64,
    since: DateTime<Utc>,
) -> Result<u64, AutomationError> {
    Ok(runs_of(workspace_id, script_id)
        .filter(script_run::Column::Ok.eq(false))
        .filter(script_run::Column::At.gte(since))
        .count(db)
        .await?)
}

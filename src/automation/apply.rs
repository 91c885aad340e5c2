//! Applying the plans of script runs, through the tag write path.

use entity::{automation_event, script, script_run};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

use super::AutomationError;
use super::script::{PlannedAction, RunOutcome, SubjectSnapshot, attributes_too_large};
use super::snapshot::subject_kind;
use crate::db::lock_row;
use crate::ids::{self, NodeKind};
use crate::subjects::{SubjectKind, attributes};
use crate::tagging::assign::{Actor, apply_to_targets};
use crate::tags::name::TagName;
use crate::tags::write::{Target, subject_table};
use crate::tags::{Op, Source, TagError};
use crate::time::{Clock, now};

/// A run to record and, when it succeeded, apply.
pub struct Run<'a> {
    pub script: &'a script::Model,
    pub outcome: RunOutcome,
}

/// The subject ids a run may act on: the event's subject and its account.
fn allowed_target(subject: &SubjectSnapshot, action: &PlannedAction) -> Option<(SubjectKind, i64)> {
    let id = action.target_id();
    let allowed = subject.id == id || subject.account.as_ref().is_some_and(|a| a.id == id);
    if !allowed {
        return None;
    }
    match ids::decode(id).ok()? {
        (NodeKind::Account, n) => Some((SubjectKind::Account, n)),
        (NodeKind::User, n) => Some((SubjectKind::User, n)),
        _ => None,
    }
    .filter(|(kind, _)| *kind == subject_kind(action.target_kind()))
}

/// Applies one successful run's actions; an error fails this run only
/// when it is the script's fault (a bad tag name, attributes past
/// `max_attributes_bytes`): the caller then records the run as failed with
/// nothing applied. Linear in the plan: each subject's attribute changes
/// are merged and written once, and its tags are added (and removed) in
/// one call each.
async fn apply_actions(
    txn: &DatabaseTransaction,
    event: &automation_event::Model,
    subject: &SubjectSnapshot,
    script: &script::Model,
    actions: &[PlannedAction],
    max_attributes_bytes: usize,
    clock: &Clock,
) -> Result<Result<(), String>, AutomationError> {
    let actor = Actor {
        source: Source::Script,
        name: Some(&script.name),
        cause: super::cause_of(event),
        depth: event.depth + 1,
    };
    // Check every tag name first, so a bad one applies nothing of the plan.
    let rules = match crate::tags::store::rules(txn, event.workspace_id).await {
        Ok(rules) => rules,
        Err(TagError::Db(db)) => return Err(db.into()),
        Err(other) => return Ok(Err(other.to_string())),
    };
    // Per target, in order of first touch: its tags to add and to remove,
    // and its attribute changes.
    let mut changes: Vec<TargetChanges> = Vec::new();
    for action in actions {
        let Some((kind, id)) = allowed_target(subject, action) else {
            return Ok(Err(format!(
                "a script may only change the event's subject and its account, not {}",
                action.target_id()
            )));
        };
        let at = match changes.iter().position(|c| c.kind == kind && c.id == id) {
            Some(at) => at,
            None => {
                changes.push(TargetChanges::new(kind, id, action));
                changes.len() - 1
            }
        };
        let target = &mut changes[at];
        match action {
            PlannedAction::AddTag { tag, .. } | PlannedAction::RemoveTag { tag, .. } => {
                let name = match TagName::parse(tag, rules) {
                    Ok(name) => name,
                    Err(e) => return Ok(Err(format!("tag {tag:?} {e}"))),
                };
                if matches!(action, PlannedAction::AddTag { .. }) {
                    target.add.push(name);
                } else {
                    target.remove.push(name);
                }
            }
            PlannedAction::SetAttribute { key, value, .. } => {
                target.attributes.push((key.clone(), value.clone()));
            }
        }
    }
    // Merge and measure every subject's attributes before writing
    // anything, so attributes past the limit apply nothing of the plan.
    let mut merged: Vec<(SubjectKind, i64, Value)> = Vec::new();
    for target in &mut changes {
        if target.attributes.is_empty() {
            continue;
        }
        let Some(current) =
            read_attributes(txn, event.workspace_id, target.kind, target.id).await?
        else {
            continue; // the subject is gone
        };
        let value = attributes::merge_into(current, std::mem::take(&mut target.attributes));
        let bytes = attributes::serialized_size(&value);
        if max_attributes_bytes > 0 && bytes > max_attributes_bytes {
            return Ok(Err(attributes_too_large(
                target.kind_name,
                &target.global_id,
                bytes,
                max_attributes_bytes,
            )));
        }
        merged.push((target.kind, target.id, value));
    }
    // Attributes first: the segments the tag changes re-evaluate see them.
    for (kind, id, value) in merged {
        write_attributes(txn, event.workspace_id, kind, id, value).await?;
    }
    for target in &changes {
        for (op, names) in [(Op::Added, &target.add), (Op::Removed, &target.remove)] {
            if names.is_empty() {
                continue;
            }
            let targets = [(target.kind, Target::Ids(vec![target.id]))];
            apply_to_targets(txn, event.workspace_id, &targets, names, op, actor, clock).await?;
        }
    }
    Ok(Ok(()))
}

/// What one run changes on one user or account.
struct TargetChanges {
    kind: SubjectKind,
    id: i64,
    /// How scripts name the subject (`USER`, its global id), for errors.
    kind_name: &'static str,
    global_id: String,
    add: Vec<TagName>,
    remove: Vec<TagName>,
    attributes: Vec<(String, Value)>,
}

impl TargetChanges {
    fn new(kind: SubjectKind, id: i64, action: &PlannedAction) -> Self {
        TargetChanges {
            kind,
            id,
            kind_name: action.target_kind().as_str(),
            global_id: action.target_id().to_owned(),
            add: Vec::new(),
            remove: Vec::new(),
            attributes: Vec::new(),
        }
    }
}

/// A subject's attributes, its row held first on PostgreSQL (so a
/// concurrent upsert's attributes are merged into, not overwritten);
/// `None` when the subject is gone.
async fn read_attributes(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: SubjectKind,
    id: i64,
) -> Result<Option<serde_json::Map<String, Value>>, AutomationError> {
    match kind {
        SubjectKind::User => {
            lock_row(txn, entity::user::Entity, entity::user::Column::Id, id).await?
        }
        SubjectKind::Account => {
            lock_row(
                txn,
                entity::account::Entity,
                entity::account::Column::Id,
                id,
            )
            .await?
        }
    }
    let current = Query::select()
        .column("attributes")
        .from(subject_table(kind))
        .and_where(Expr::col("workspace_id").eq(workspace_id))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    let Some(row) = txn.query_one(&current).await? else {
        return Ok(None);
    };
    Ok(Some(match row.try_get_by_index::<Value>(0)? {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }))
}

/// Stores a subject's merged attributes (one statement per subject and run).
async fn write_attributes(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    kind: SubjectKind,
    id: i64,
    value: Value,
) -> Result<(), AutomationError> {
    let update = Query::update()
        .table(subject_table(kind))
        .value("attributes", value)
        .value("updated_at", now())
        .and_where(Expr::col("workspace_id").eq(workspace_id))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    txn.execute(&update).await?;
    Ok(())
}

/// The JSON form of actions, as runs store them.
pub fn actions_json(actions: &[PlannedAction]) -> Value {
    Value::Array(
        actions
            .iter()
            .map(|action| match action {
                PlannedAction::AddTag { target_kind, target_id, tag } => json!({
                    "op": Op::Added.as_str(), "tag": tag, "subjectKind": target_kind.as_str(), "subjectId": target_id }),
                PlannedAction::RemoveTag { target_kind, target_id, tag } => json!({
                    "op": Op::Removed.as_str(), "tag": tag, "subjectKind": target_kind.as_str(), "subjectId": target_id }),
                PlannedAction::SetAttribute { target_kind, target_id, key, value } => json!({
                    "op": "SET_ATTRIBUTE", "key": key, "value": value,
                    "subjectKind": target_kind.as_str(), "subjectId": target_id }),
            })
            .collect(),
    )
}

/// Applies the successful runs' plans in `txn` (a subject's attributes
/// may take at most `max_attributes_bytes`, 0: no limit) and returns the records of
/// every run, for [`record_runs`]. With `too_deep`, nothing is applied and
/// runs that planned changes are recorded as failed: the cascade stops here.
pub async fn apply_runs(
    txn: &DatabaseTransaction,
    event: &automation_event::Model,
    subject: &SubjectSnapshot,
    runs: Vec<Run<'_>>,
    too_deep: Option<i32>,
    max_attributes_bytes: usize,
    clock: &Clock,
) -> Result<Vec<script_run::ActiveModel>, AutomationError> {
    let mut records = Vec::with_capacity(runs.len());
    for Run {
        script,
        mut outcome,
    } in runs
    {
        if outcome.ok && !outcome.actions.is_empty() {
            if let Some(max) = too_deep {
                outcome.ok = false;
                outcome.error = Some(format!(
                    "automation cascade deeper than {max} steps stopped; nothing of this run was applied"
                ));
            } else if let Err(why) = apply_actions(
                txn,
                event,
                subject,
                script,
                &outcome.actions,
                max_attributes_bytes,
                clock,
            )
            .await?
            {
                outcome.ok = false;
                outcome.error = Some(format!("{why}; nothing of this run was applied"));
            }
        }
        let actions = if outcome.ok {
            actions_json(&outcome.actions)
        } else {
            Value::Array(vec![])
        };
        records.push(script_run::ActiveModel {
            workspace_id: Set(event.workspace_id),
            script_id: Set(script.id),
            script_version: Set(script.version),
            event_id: Set(event.id),
            event_kind: Set(event.kind),
            subject_kind: Set(event.subject_kind),
            subject_id: Set(event.subject_id),
            ok: Set(outcome.ok),
            error: Set(outcome.error),
            logs: Set(json!(outcome.logs)),
            actions: Set(actions),
            duration_micros: Set(outcome.duration.as_micros() as i64),
            at: Set(now()),
            ..Default::default()
        });
    }
    Ok(records)
}

/// Records the runs of a batch of events, replacing the runs that earlier
/// attempts of the `retried` ones may have left (delivery is at least once).
pub async fn record_runs(
    txn: &DatabaseTransaction,
    retried: &[i64],
    records: Vec<script_run::ActiveModel>,
) -> Result<(), AutomationError> {
    if !retried.is_empty() {
        script_run::Entity::delete_many()
            .filter(script_run::Column::EventId.is_in(retried.iter().copied()))
            .exec(txn)
            .await?;
    }
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<_> = records.by_ref().take(500).collect();
        script_run::Entity::insert_many(chunk)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Deletes all but the `keep` newest runs of a script.
pub async fn prune_runs(
    txn: &DatabaseTransaction,
    script_id: i64,
    keep: u64,
) -> Result<(), AutomationError> {
    let newest_dropped = Query::select()
        .column(script_run::Column::Id)
        .from(script_run::Entity)
        .and_where(Expr::col(script_run::Column::ScriptId).eq(script_id))
        .order_by(script_run::Column::Id, Order::Desc)
        .limit(1)
        .offset(keep)
        .to_owned();
    let Some(row) = txn.query_one(&newest_dropped).await? else {
        return Ok(());
    };
    let cutoff: i64 = row.try_get_by_index(0)?;
    script_run::Entity::delete_many()
        .filter(script_run::Column::ScriptId.eq(script_id))
        .filter(script_run::Column::Id.lte(cutoff))
        .exec(txn)
        .await?;
    Ok(())
}

//! Accounts: upsert, lookup, listing and deletion, always within one workspace.

use chrono::{DateTime, Utc};
use entity::account;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter, Select, Set,
};
use serde_json::Value;

use super::page::{Direction, Page, PageRequest, contains_pattern, fetch_read};
use super::{Patch, SubjectError, attributes, clean_text};
use crate::db::{begin_write, lock_row, lost_race, read_in_workspace, read_many_in_workspace};
use crate::segments::membership::{self, Changed, Reason};
use crate::time::{Clock, now};

/// What `upsertAccount` asks for, before validation.
#[derive(Debug, Clone, Default)]
pub struct AccountInput {
    pub external_id: Option<String>,
    pub name: String,
    pub attributes: Option<Value>,
    pub last_activity_at: Patch<DateTime<Utc>>,
}

struct ValidAccount {
    external_id: Option<String>,
    name: String,
    attributes: Option<serde_json::Map<String, Value>>,
    last_activity_at: Patch<DateTime<Utc>>,
}

fn validate(input: AccountInput) -> Result<ValidAccount, SubjectError> {
    Ok(ValidAccount {
        external_id: input
            .external_id
            .map(|id| clean_text("externalId", &id, 200))
            .transpose()?,
        name: clean_text("name", &input.name, 200)?,
        attributes: input.attributes.map(attributes::parse).transpose()?,
        last_activity_at: input.last_activity_at,
    })
}

/// Creates an account, or updates the one with the same `externalId`.
/// Attributes are merged key by key; `null` removes a key.
pub async fn upsert(
    db: &DatabaseConnection,
    workspace_id: i64,
    input: AccountInput,
    clock: &Clock,
) -> Result<account::Model, SubjectError> {
    let input = validate(input)?;
    // A concurrent insert of the same externalId makes the first try fail on
    // the unique index (or, on PostgreSQL, end in a deadlock with it); the
    // second try then finds and updates that row.
    match upsert_once(db, workspace_id, &input, clock).await {
        Err(SubjectError::Db(e)) if lost_race(&e) => {
            upsert_once(db, workspace_id, &input, clock).await
        }
        other => other,
    }
}

async fn upsert_once(
    db: &DatabaseConnection,
    workspace_id: i64,
    input: &ValidAccount,
    clock: &Clock,
) -> Result<account::Model, SubjectError> {
    let txn = begin_write(db).await?;
    let existing = match &input.external_id {
        Some(external_id) => find_by_external_id(&txn, workspace_id, external_id).await?,
        None => None,
    };
    let existing = match existing {
        // PostgreSQL: hold the row and read it again, so attributes merged
        // at the same time by another request are merged into, not lost.
        Some(found) if txn.get_database_backend() == DbBackend::Postgres => {
            lock_row(&txn, account::Entity, account::Column::Id, found.id).await?;
            find(&txn, workspace_id, found.id).await?
        }
        other => other,
    };
    let at = now();
    let model = match existing {
        Some(current) => {
            let attributes = match &input.attributes {
                Some(changes) => attributes::merge(&current.attributes, changes.clone()),
                None => current.attributes.clone(),
            };
            let last_activity_at = input
                .last_activity_at
                .clone()
                .apply(current.last_activity_at);
            let mut active = current.into_active_model();
            active.name = Set(input.name.clone());
            active.attributes = Set(attributes);
            active.last_activity_at = Set(last_activity_at);
            active.updated_at = Set(at);
            active.update(&txn).await?
        }
        None => {
            let attributes =
                attributes::merge(&Value::Null, input.attributes.clone().unwrap_or_default());
            account::ActiveModel {
                workspace_id: Set(workspace_id),
                external_id: Set(input.external_id.clone()),
                name: Set(input.name.clone()),
                attributes: Set(attributes),
                last_activity_at: Set(input.last_activity_at.clone().apply(None)),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            }
            .insert(&txn)
            .await?
        }
    };
    let changed = [Changed {
        kind: super::SubjectKind::Account,
        id: model.id,
        cause: None,
    }];
    membership::reevaluate(&txn, workspace_id, &changed, Reason::Fields, 0, clock.now()).await?;
    txn.commit().await?;
    Ok(model)
}

fn scoped(workspace_id: i64) -> Select<account::Entity> {
    account::Entity::find().filter(account::Column::WorkspaceId.eq(workspace_id))
}

/// The account with this id, if it is in the workspace.
pub async fn find(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    id: i64,
) -> Result<Option<account::Model>, SubjectError> {
    Ok(read_in_workspace::<_, account::Entity>(db, workspace_id, id).await?)
}

pub async fn find_by_external_id(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    external_id: &str,
) -> Result<Option<account::Model>, SubjectError> {
    Ok(scoped(workspace_id)
        .filter(account::Column::ExternalId.eq(external_id.trim()))
        .one(db)
        .await?)
}

/// Accounts among `ids` that are in the workspace (for DataLoaders).
pub async fn find_many(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<account::Model>, SubjectError> {
    Ok(read_many_in_workspace::<_, account::Entity>(db, workspace_id, ids).await?)
}

fn search_query(
    workspace_id: i64,
    search: Option<&str>,
    matching: Option<&SelectStatement>,
) -> Select<account::Entity> {
    let mut query = scoped(workspace_id);
    if let Some(matching) = matching {
        query = query.filter(account::Column::Id.in_subquery(matching.clone()));
    }
    match search.map(str::trim).filter(|s| !s.is_empty()) {
        None => query,
        Some(needle) => {
            let pattern = contains_pattern(needle);
            let like = |column: account::Column| {
                Expr::expr(Func::lower(Expr::col((account::Entity, column))))
                    .like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query.filter(
                Condition::any()
                    .add(like(account::Column::Name))
                    .add(like(account::Column::ExternalId)),
            )
        }
    }
}

/// One page of the workspace's accounts in id order, optionally searched
/// (case-insensitive substring of name or external id).
pub async fn list(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    search: Option<&str>,
    matching: Option<&SelectStatement>,
    page: PageRequest,
) -> Result<Page<account::Model>, SubjectError> {
    let query = search_query(workspace_id, search, matching);
    Ok(fetch_read(db, query, account::Column::Id, Direction::OldestFirst, page).await?)
}

/// How many accounts `list` would go through in all.
pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    search: Option<&str>,
    matching: Option<&SelectStatement>,
) -> Result<u64, SubjectError> {
    Ok(search_query(workspace_id, search, matching)
        .count(db)
        .await?)
}

//! Users: upsert, lookup, listing and deletion, always within one workspace.

use chrono::{DateTime, Utc};
use entity::{account, user};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IntoActiveModel, Iterable, JoinType,
    PaginatorTrait, QueryFilter, QuerySelect, QueryTrait, Select, Set,
};
use serde_json::Value;

use super::email::Email;
use super::page::{Direction, Page, PageRequest, contains_pattern, fetch_read};
use super::{Patch, SubjectError, accounts, attributes, clean_text};
use crate::db::{
    begin_write, is_unique_violation, lock_row, lost_race, read_in_workspace,
    read_many_in_workspace,
};
use crate::segments::membership::{self, Changed, Reason};
use crate::sqlite_read::FromRow;
use crate::time::{Clock, now};

/// What `upsertUser` asks for, before validation.
#[derive(Debug, Clone, Default)]
pub struct UserInput {
    pub external_id: Option<String>,
    pub email: String,
    pub first_name: Patch<String>,
    pub last_name: Patch<String>,
    /// `Set` links the user to the account with that external id; `Clear` unlinks it.
    pub account_external_id: Patch<String>,
    pub attributes: Option<Value>,
    pub last_seen_at: Patch<DateTime<Utc>>,
}

struct ValidUser {
    external_id: Option<String>,
    email: Email,
    first_name: Patch<String>,
    last_name: Patch<String>,
    account_external_id: Patch<String>,
    attributes: Option<serde_json::Map<String, Value>>,
    last_seen_at: Patch<DateTime<Utc>>,
}

fn validate(input: UserInput) -> Result<ValidUser, SubjectError> {
    Ok(ValidUser {
        external_id: input
            .external_id
            .map(|id| clean_text("externalId", &id, 200))
            .transpose()?,
        email: Email::parse(&input.email)?,
        first_name: input
            .first_name
            .try_map(|name| clean_text("firstName", &name, 100))?,
        last_name: input
            .last_name
            .try_map(|name| clean_text("lastName", &name, 100))?,
        account_external_id: input
            .account_external_id
            .try_map(|id| clean_text("accountExternalId", &id, 200))?,
        attributes: input.attributes.map(attributes::parse).transpose()?,
        last_seen_at: input.last_seen_at,
    })
}

/// Creates a user or updates the existing one. The upsert key is
/// `externalId` when given, else the email. A user found by email that has
/// no external id yet adopts the given one.
pub async fn upsert(
    db: &DatabaseConnection,
    workspace_id: i64,
    input: UserInput,
    clock: &Clock,
) -> Result<user::Model, SubjectError> {
    let input = validate(input)?;
    // A concurrent insert of the same key makes the first try fail on the
    // unique index (or, on PostgreSQL, end in a deadlock with it); the
    // second try finds and updates that row.
    match upsert_once(db, workspace_id, &input, clock).await {
        Err(SubjectError::Db(e)) if lost_race(&e) => upsert_once(db, workspace_id, &input, clock)
            .await
            .map_err(|e| match e {
                SubjectError::Db(e) if is_unique_violation(&e) => SubjectError::Conflict(format!(
                    "another user already has email \"{}\"",
                    input.email.as_str()
                )),
                other => other,
            }),
        other => other,
    }
}

async fn upsert_once(
    db: &DatabaseConnection,
    workspace_id: i64,
    input: &ValidUser,
    clock: &Clock,
) -> Result<user::Model, SubjectError> {
    let txn = begin_write(db).await?;
    let existing = match find_upsert_target(&txn, workspace_id, input).await? {
        // PostgreSQL: hold the row and read it again, so attributes merged
        // at the same time by another request are merged into, not lost.
        Some(found) if txn.get_database_backend() == DbBackend::Postgres => {
            lock_row(&txn, user::Entity, user::Column::Id, found.id).await?;
            find(&txn, workspace_id, found.id).await?
        }
        other => other,
    };
    let account_id = match &input.account_external_id {
        Patch::Keep => Patch::Keep,
        Patch::Clear => Patch::Clear,
        Patch::Set(external_id) => {
            let account = accounts::find_by_external_id(&txn, workspace_id, external_id)
                .await?
                .ok_or_else(|| SubjectError::UnknownAccountExternalId(external_id.clone()))?;
            Patch::Set(account.id)
        }
    };
    let at = now();
    let previous_account = existing.as_ref().and_then(|u| u.account_id);
    let model = match existing {
        Some(current) => {
            if current.email != input.email.as_str()
                && find_by_email(&txn, workspace_id, input.email.as_str())
                    .await?
                    .is_some()
            {
                return Err(SubjectError::Conflict(format!(
                    "another user already has email \"{}\"",
                    input.email.as_str()
                )));
            }
            let attributes = match &input.attributes {
                Some(changes) => attributes::merge(&current.attributes, changes.clone()),
                None => current.attributes.clone(),
            };
            let mut active = current.clone().into_active_model();
            active.email = Set(input.email.as_str().to_owned());
            if input.external_id.is_some() {
                active.external_id = Set(input.external_id.clone());
            }
            active.first_name = Set(input.first_name.clone().apply(current.first_name));
            active.last_name = Set(input.last_name.clone().apply(current.last_name));
            active.account_id = Set(account_id.apply(current.account_id));
            active.attributes = Set(attributes);
            active.last_seen_at = Set(input.last_seen_at.clone().apply(current.last_seen_at));
            active.updated_at = Set(at);
            active.update(&txn).await?
        }
        None => {
            let attributes =
                attributes::merge(&Value::Null, input.attributes.clone().unwrap_or_default());
            user::ActiveModel {
                workspace_id: Set(workspace_id),
                external_id: Set(input.external_id.clone()),
                email: Set(input.email.as_str().to_owned()),
                first_name: Set(input.first_name.clone().apply(None)),
                last_name: Set(input.last_name.clone().apply(None)),
                account_id: Set(account_id.apply(None)),
                attributes: Set(attributes),
                last_seen_at: Set(input.last_seen_at.clone().apply(None)),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            }
            .insert(&txn)
            .await?
        }
    };
    let changed = [Changed {
        kind: super::SubjectKind::User,
        id: model.id,
        cause: None,
    }];
    membership::reevaluate(&txn, workspace_id, &changed, Reason::Fields, 0, clock.now()).await?;
    // The account it left has one user fewer (`any_user` filters).
    if let Some(left) = previous_account.filter(|id| Some(*id) != model.account_id) {
        let left = [Changed {
            kind: super::SubjectKind::Account,
            id: left,
            cause: None,
        }];
        membership::reevaluate(&txn, workspace_id, &left, Reason::Related, 0, clock.now()).await?;
    }
    txn.commit().await?;
    Ok(model)
}

async fn find_upsert_target(
    txn: &DatabaseTransaction,
    workspace_id: i64,
    input: &ValidUser,
) -> Result<Option<user::Model>, SubjectError> {
    let Some(external_id) = &input.external_id else {
        return find_by_email(txn, workspace_id, input.email.as_str()).await;
    };
    if let Some(user) = find_by_external_id(txn, workspace_id, external_id).await? {
        return Ok(Some(user));
    }
    match find_by_email(txn, workspace_id, input.email.as_str()).await? {
        Some(user) if user.external_id.is_none() => Ok(Some(user)),
        Some(user) => Err(SubjectError::Conflict(format!(
            "email \"{}\" belongs to the user with externalId \"{}\"",
            input.email.as_str(),
            user.external_id.unwrap_or_default()
        ))),
        None => Ok(None),
    }
}

fn scoped(workspace_id: i64) -> Select<user::Entity> {
    user::Entity::find().filter(user::Column::WorkspaceId.eq(workspace_id))
}

/// The user with this id, if it is in the workspace.
pub async fn find(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    id: i64,
) -> Result<Option<user::Model>, SubjectError> {
    Ok(read_in_workspace::<_, user::Entity>(db, workspace_id, id).await?)
}

/// Users among `ids` that are in the workspace (for DataLoaders).
pub async fn find_many(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<user::Model>, SubjectError> {
    Ok(read_many_in_workspace::<_, user::Entity>(db, workspace_id, ids).await?)
}

pub async fn find_by_email(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    email: &str,
) -> Result<Option<user::Model>, SubjectError> {
    Ok(scoped(workspace_id)
        .filter(user::Column::Email.eq(email.trim()))
        .one(db)
        .await?)
}

pub async fn find_by_external_id(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    external_id: &str,
) -> Result<Option<user::Model>, SubjectError> {
    Ok(scoped(workspace_id)
        .filter(user::Column::ExternalId.eq(external_id.trim()))
        .one(db)
        .await?)
}

/// What to list: the whole workspace, or one account's users; optionally searched.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserScope<'a> {
    pub account_id: Option<i64>,
    pub search: Option<&'a str>,
    /// Only the users whose ids this query selects (a filter's or segment's members).
    pub matching: Option<&'a SelectStatement>,
}

fn search_query(workspace_id: i64, scope: UserScope<'_>) -> Select<user::Entity> {
    let mut query = scoped(workspace_id);
    if let Some(account_id) = scope.account_id {
        query = query.filter(user::Column::AccountId.eq(account_id));
    }
    if let Some(matching) = scope.matching {
        query = query.filter(user::Column::Id.in_subquery(matching.clone()));
    }
    match scope.search.map(str::trim).filter(|s| !s.is_empty()) {
        None => query,
        Some(needle) => {
            let pattern = contains_pattern(needle);
            let like = |column: user::Column| {
                Expr::expr(Func::lower(Expr::col((user::Entity, column))))
                    .like(LikeExpr::new(pattern.clone()).escape('\\'))
            };
            query.filter(
                Condition::any()
                    .add(like(user::Column::Email))
                    .add(like(user::Column::FirstName))
                    .add(like(user::Column::LastName))
                    .add(like(user::Column::ExternalId)),
            )
        }
    }
}

/// One page of users in id order.
pub async fn list(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    scope: UserScope<'_>,
    page: PageRequest,
) -> Result<Page<user::Model>, SubjectError> {
    let query = search_query(workspace_id, scope);
    Ok(fetch_read(db, query, user::Column::Id, Direction::OldestFirst, page).await?)
}

/// A user with its account, when it has one.
pub type WithAccount = (user::Model, Option<account::Model>);

/// [`find`] with the user's account, in one statement.
pub async fn find_with_account(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<WithAccount>, SubjectError> {
    let select = scoped(workspace_id).filter(user::Column::Id.eq(id));
    Ok(with_accounts(db, workspace_id, select).await?.pop())
}

/// The users `select` finds, each with its account (of the same workspace)
/// joined, decoded by column index: the user's columns, then the account's.
async fn with_accounts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    select: Select<user::Entity>,
) -> Result<Vec<WithAccount>, DbErr> {
    let account_of_user = user::Entity::belongs_to(account::Entity)
        .from(user::Column::AccountId)
        .to(account::Column::Id)
        .on_condition(move |_, account| {
            Condition::all()
                .add(Expr::col((account, account::Column::WorkspaceId)).eq(workspace_id))
        })
        .into();
    let select = select
        .join(JoinType::LeftJoin, account_of_user)
        .columns(account::Column::iter());
    let rows = db
        .query_all_raw(select.build(db.get_database_backend()))
        .await?;
    let at = user::Column::iter().count();
    rows.iter()
        .map(|row| {
            let user = user::Model::from_result(row, 0)?;
            let account = match row.try_get_by_index::<Option<i64>>(at)? {
                Some(_) => Some(account::Model::from_result(row, at)?),
                None => None,
            };
            Ok((user, account))
        })
        .collect()
}

/// How many users `list` would go through in all.
pub async fn count(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    scope: UserScope<'_>,
) -> Result<u64, SubjectError> {
    Ok(search_query(workspace_id, scope).count(db).await?)
}

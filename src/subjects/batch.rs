//! Many subjects written at once (imports): set-based upserts of users and
//! accounts, at most [`INSERT_CHUNK`] rows a statement. The caller has
//! planned the rows (which exist, by id, and which are new) in its
//! transaction; these functions write them and nothing else (segment
//! re-evaluation and tags are the caller's, in the same transaction).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{account, user};
use sea_orm::sea_query::{Alias, Expr, Func, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::json;

/// Rows per multi-row insert (at most 10 values each).
pub const INSERT_CHUNK: usize = 500;

/// `id`, when given, before a row's other columns or values.
fn id_first<T>(id: Option<T>, rest: impl IntoIterator<Item = T>) -> Vec<T> {
    id.into_iter().chain(rest).collect()
}

/// A user's fields as a batch writes them.
#[derive(Debug, Clone, Copy)]
pub struct UserFields<'a> {
    pub external_id: Option<&'a str>,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub account_id: Option<i64>,
}

/// The columns of a user row and their values, with `id` first when given.
fn user_row(
    id: Option<i64>,
    workspace_id: i64,
    fields: &UserFields<'_>,
    at: DateTime<Utc>,
) -> Vec<Expr> {
    id_first(
        id.map(Expr::val),
        [
            Expr::val(workspace_id),
            Expr::val(fields.external_id.map(str::to_owned)),
            Expr::val(fields.email),
            Expr::val(fields.first_name.map(str::to_owned)),
            Expr::val(fields.last_name.map(str::to_owned)),
            Expr::val(fields.account_id),
            Expr::val(json!({})),
            Expr::val(at),
            Expr::val(at),
        ],
    )
}

/// The columns [`user_row`] fills, with `id` first when `with_id`.
fn user_columns(with_id: bool) -> Vec<user::Column> {
    id_first(
        with_id.then_some(user::Column::Id),
        [
            user::Column::WorkspaceId,
            user::Column::ExternalId,
            user::Column::Email,
            user::Column::FirstName,
            user::Column::LastName,
            user::Column::AccountId,
            user::Column::Attributes,
            user::Column::CreatedAt,
            user::Column::UpdatedAt,
        ],
    )
}

/// Updates existing users by id: the email and `updated_at` replaced, the
/// other fields kept where the row gives none (one `INSERT .. ON CONFLICT
/// (id) DO UPDATE` per chunk).
pub async fn update_users(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    users: &[(i64, UserFields<'_>)],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in users.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(user::Entity).columns(user_columns(true));
        for (id, fields) in chunk {
            insert.values_panic(user_row(Some(*id), workspace_id, fields, at));
        }
        let excluded = |column: user::Column| Expr::col((Alias::new("excluded"), column));
        let keep = |column: user::Column| {
            Expr::from(Func::coalesce([
                excluded(column),
                Expr::col((user::Entity, column)),
            ]))
        };
        insert.on_conflict(
            OnConflict::column(user::Column::Id)
                .value(user::Column::Email, excluded(user::Column::Email))
                .value(user::Column::ExternalId, keep(user::Column::ExternalId))
                .value(user::Column::FirstName, keep(user::Column::FirstName))
                .value(user::Column::LastName, keep(user::Column::LastName))
                .value(user::Column::AccountId, keep(user::Column::AccountId))
                .value(user::Column::UpdatedAt, excluded(user::Column::UpdatedAt))
                .to_owned(),
        );
        db.execute(&insert).await?;
    }
    Ok(())
}

/// Inserts new users; returns their ids in order (by email, which
/// RETURNING gives back in no promised order).
pub async fn insert_users(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    users: &[UserFields<'_>],
    at: DateTime<Utc>,
) -> Result<Vec<Option<i64>>, DbErr> {
    let mut ids = Vec::with_capacity(users.len());
    for chunk in users.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert.into_table(user::Entity).columns(user_columns(false));
        for fields in chunk {
            insert.values_panic(user_row(None, workspace_id, fields, at));
        }
        insert.returning(Query::returning().columns([user::Column::Id, user::Column::Email]));
        let mut by_email: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
        for row in db.query_all(&insert).await? {
            by_email.insert(row.try_get_by_index(1)?, row.try_get_by_index(0)?);
        }
        ids.extend(
            chunk
                .iter()
                .map(|fields| by_email.get(fields.email).copied()),
        );
    }
    Ok(ids)
}

/// The columns of an account row and their values, with `id` first when given.
fn account_row(
    id: Option<i64>,
    workspace_id: i64,
    external_id: Option<&str>,
    name: &str,
    at: DateTime<Utc>,
) -> Vec<Expr> {
    id_first(
        id.map(Expr::val),
        [
            Expr::val(workspace_id),
            Expr::val(external_id.map(str::to_owned)),
            Expr::val(name),
            Expr::val(json!({})),
            Expr::val(at),
            Expr::val(at),
        ],
    )
}

/// The columns [`account_row`] fills, with `id` first when `with_id`.
fn account_columns(with_id: bool) -> Vec<account::Column> {
    id_first(
        with_id.then_some(account::Column::Id),
        [
            account::Column::WorkspaceId,
            account::Column::ExternalId,
            account::Column::Name,
            account::Column::Attributes,
            account::Column::CreatedAt,
            account::Column::UpdatedAt,
        ],
    )
}

/// Updates existing accounts by id, `(id, external_id, name)`: the name and
/// `updated_at` replaced (one `INSERT .. ON CONFLICT (id) DO UPDATE` per
/// chunk).
pub async fn update_accounts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    accounts: &[(i64, Option<&str>, &str)],
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    for chunk in accounts.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(account::Entity)
            .columns(account_columns(true));
        for (id, external_id, name) in chunk {
            insert.values_panic(account_row(Some(*id), workspace_id, *external_id, name, at));
        }
        let excluded = |column: account::Column| Expr::col((Alias::new("excluded"), column));
        insert.on_conflict(
            OnConflict::column(account::Column::Id)
                .value(account::Column::Name, excluded(account::Column::Name))
                .value(
                    account::Column::UpdatedAt,
                    excluded(account::Column::UpdatedAt),
                )
                .to_owned(),
        );
        db.execute(&insert).await?;
    }
    Ok(())
}

/// Inserts accounts `(external_id, name)`; returns their ids in order.
pub async fn insert_accounts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    accounts: &[(Option<&str>, &str)],
    at: DateTime<Utc>,
) -> Result<Vec<i64>, DbErr> {
    let mut ids = Vec::with_capacity(accounts.len());
    for chunk in accounts.chunks(INSERT_CHUNK) {
        let mut insert = Query::insert();
        insert
            .into_table(account::Entity)
            .columns(account_columns(false));
        for (external_id, name) in chunk {
            insert.values_panic(account_row(None, workspace_id, *external_id, name, at));
        }
        insert.returning(Query::returning().columns([
            account::Column::Id,
            account::Column::ExternalId,
            account::Column::Name,
        ]));
        // RETURNING's order is not promised: match rows back by key.
        let mut by_key: HashMap<(Option<String>, String), i64> = HashMap::new();
        for row in db.query_all(&insert).await? {
            let id: i64 = row.try_get_by_index(0)?;
            by_key.insert((row.try_get_by_index(1)?, row.try_get_by_index(2)?), id);
        }
        for (external_id, name) in chunk {
            let key = (external_id.map(str::to_owned), (*name).to_owned());
            let id = by_key.get(&key).copied().ok_or_else(|| {
                DbErr::Custom(format!("the new account {name:?} was not returned"))
            })?;
            ids.push(id);
        }
    }
    Ok(ids)
}

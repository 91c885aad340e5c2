//! Loading what filters read about a set of subjects ([`SubjectData`]), in a
//! handful of queries whatever their number, for the in-memory evaluator.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{account, event, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::SegmentError;
use super::filter::{SubjectData, SubjectKind};
use crate::db::find_many_in_workspace;
use crate::tags::catalogue;
use crate::vocab::SubjectKind as DomainKind;

/// What to load besides the subjects' own rows and tags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// Users: their account (for `account.`).
    pub account: bool,
    /// Accounts: their users (for `any_user`).
    pub users: bool,
    /// Events at or after this instant (for `events` and `active_days`).
    pub events_since: Option<DateTime<Utc>>,
}

/// The data of the given users (absent ids are skipped).
pub async fn users(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    ids: &[i64],
    needs: Needs,
) -> Result<HashMap<i64, SubjectData>, SegmentError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = find_many_in_workspace::<user::Entity>(db, workspace_id, ids).await?;
    let mut data =
        rows_into_data(db, workspace_id, DomainKind::User, rows, user_data, needs).await?;
    if needs.account {
        let mut account_ids: Vec<i64> = data.values().filter_map(|(_, a)| *a).collect();
        account_ids.sort_unstable();
        account_ids.dedup();
        // `account.any_user(...)` reads the account's users too.
        let inner = Needs {
            account: false,
            ..needs
        };
        let accounts = Box::pin(self::accounts(db, workspace_id, &account_ids, inner)).await?;
        for (subject, account_id) in data.values_mut() {
            subject.account = account_id
                .and_then(|id| accounts.get(&id))
                .map(|a| Box::new(a.clone()));
        }
    }
    Ok(data.into_iter().map(|(id, (d, _))| (id, d)).collect())
}

/// The data of the given accounts (absent ids are skipped).
pub async fn accounts(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    ids: &[i64],
    needs: Needs,
) -> Result<HashMap<i64, SubjectData>, SegmentError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = find_many_in_workspace::<account::Entity>(db, workspace_id, ids).await?;
    let data = rows_into_data(
        db,
        workspace_id,
        DomainKind::Account,
        rows,
        account_data,
        needs,
    )
    .await?;
    let mut data: HashMap<i64, SubjectData> =
        data.into_iter().map(|(id, (d, _))| (id, d)).collect();
    if needs.users {
        let user_ids: Vec<i64> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::WorkspaceId.eq(workspace_id))
            .filter(user::Column::AccountId.is_in(ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        let inner = Needs {
            account: false,
            users: false,
            ..needs
        };
        let members = Box::pin(self::users(db, workspace_id, &user_ids, inner)).await?;
        let rows = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::AccountId)
            .filter(user::Column::Id.is_in(user_ids.iter().copied()))
            .into_tuple::<(i64, Option<i64>)>()
            .all(db)
            .await?;
        for (user_id, account_id) in rows {
            if let (Some(account), Some(member)) = (
                account_id.and_then(|id| data.get_mut(&id)),
                members.get(&user_id),
            ) {
                account.users.push(member.clone());
            }
        }
    }
    Ok(data)
}

/// A user's data without tags or events, and its account id.
fn user_data(row: user::Model) -> (i64, SubjectData, Option<i64>) {
    let mut data = SubjectData::new(SubjectKind::User, row.created_at);
    data.email = Some(row.email);
    data.first_name = row.first_name;
    data.last_name = row.last_name;
    data.external_id = row.external_id;
    data.last_seen_at = row.last_seen_at;
    data.attributes = object(row.attributes);
    (row.id, data, row.account_id)
}

/// An account's data without tags or events.
fn account_data(row: account::Model) -> (i64, SubjectData, Option<i64>) {
    let mut data = SubjectData::new(SubjectKind::Account, row.created_at);
    data.name = Some(row.name);
    data.external_id = row.external_id;
    data.last_activity_at = row.last_activity_at;
    data.attributes = object(row.attributes);
    (row.id, data, None)
}

fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Adds tags (and events when needed) to rows made into data.
async fn rows_into_data<M>(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    kind: DomainKind,
    rows: Vec<M>,
    into: fn(M) -> (i64, SubjectData, Option<i64>),
    needs: Needs,
) -> Result<HashMap<i64, (SubjectData, Option<i64>)>, SegmentError> {
    let mut data: HashMap<i64, (SubjectData, Option<i64>)> = rows
        .into_iter()
        .map(into)
        .map(|(id, d, account)| (id, (d, account)))
        .collect();
    let ids: Vec<i64> = data.keys().copied().collect();
    let tags = catalogue::subject_tags(db, workspace_id, kind, &ids).await?;
    for (id, tags) in tags {
        if let Some((subject, _)) = data.get_mut(&id) {
            subject.tags = tags.into_iter().map(|t| t.name).collect();
        }
    }
    if let Some(since) = needs.events_since {
        let events: Vec<(i64, String, DateTime<Utc>)> = event::Entity::find()
            .select_only()
            .column(event::Column::SubjectId)
            .column(event::Column::Name)
            .column(event::Column::At)
            .filter(event::Column::SubjectKind.eq(kind.as_str()))
            .filter(event::Column::SubjectId.is_in(ids.iter().copied()))
            .filter(event::Column::At.gte(since))
            .into_tuple()
            .all(db)
            .await?;
        for (id, name, at) in events {
            if let Some((subject, _)) = data.get_mut(&id) {
                subject.events.push((name, at));
            }
        }
    }
    Ok(data)
}

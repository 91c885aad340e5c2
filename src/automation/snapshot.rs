//! Building the snapshot of a subject that scripts read.

use sea_orm::ConnectionTrait;

use super::AutomationError;
use super::script::{SubjectKind as ScriptKind, SubjectSnapshot};
use crate::ids::{self, NodeKind};
use crate::subjects::{SubjectKind, accounts, users};
use crate::tags::catalogue;

/// The script-facing kind of a subject kind.
pub fn script_kind(kind: SubjectKind) -> ScriptKind {
    match kind {
        SubjectKind::Account => ScriptKind::Account,
        SubjectKind::User => ScriptKind::User,
    }
}

/// The subject kind of a script-facing kind.
pub fn subject_kind(kind: ScriptKind) -> SubjectKind {
    match kind {
        ScriptKind::Account => SubjectKind::Account,
        ScriptKind::User => SubjectKind::User,
    }
}

/// The id scripts see (`s.id`): the subject's global API id.
pub fn script_id(kind: SubjectKind, id: i64) -> String {
    let node = match kind {
        SubjectKind::Account => NodeKind::Account,
        SubjectKind::User => NodeKind::User,
    };
    ids::encode(node, id)
}

/// The subject as it is now, with its tags and (for a user) its account;
/// `None` when it no longer exists.
pub async fn load(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    kind: SubjectKind,
    id: i64,
) -> Result<Option<SubjectSnapshot>, AutomationError> {
    Ok(load_many(db, workspace_id, &[(kind, id)])
        .await?
        .remove(&(kind, id)))
}

/// Snapshots of many subjects of one workspace in a handful of queries
/// (subjects, their accounts, and all their tags); deleted ones are absent.
pub async fn load_many(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    subjects: &[(SubjectKind, i64)],
) -> Result<std::collections::HashMap<(SubjectKind, i64), SubjectSnapshot>, AutomationError> {
    use std::collections::HashMap;
    let user_ids: Vec<i64> = subjects
        .iter()
        .filter(|(k, _)| *k == SubjectKind::User)
        .map(|(_, id)| *id)
        .collect();
    // Two rounds of two reads at once: the users with their tags, then
    // their accounts (and the accounts asked for) with theirs.
    let (users, user_tags) = with_tags(
        db,
        workspace_id,
        SubjectKind::User,
        &user_ids,
        users::find_many(db, workspace_id, &user_ids),
    )
    .await?;
    let mut account_ids: Vec<i64> = subjects
        .iter()
        .filter(|(k, _)| *k == SubjectKind::Account)
        .map(|(_, id)| *id)
        .chain(users.iter().filter_map(|u| u.account_id))
        .collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    let (accounts, account_tags) = with_tags(
        db,
        workspace_id,
        SubjectKind::Account,
        &account_ids,
        accounts::find_many(db, workspace_id, &account_ids),
    )
    .await?;
    let names = |tags: Option<&Vec<entity::tag::Model>>| -> Vec<String> {
        tags.map(|t| t.iter().map(|t| t.name.clone()).collect())
            .unwrap_or_default()
    };
    let mut account_snapshots: HashMap<i64, SubjectSnapshot> = HashMap::new();
    for account in accounts {
        let mut snapshot = SubjectSnapshot::new(
            ScriptKind::Account,
            script_id(SubjectKind::Account, account.id),
        );
        snapshot.name = Some(account.name);
        snapshot.attributes = account.attributes.as_object().cloned().unwrap_or_default();
        snapshot.tags = names(account_tags.get(&account.id));
        account_snapshots.insert(account.id, snapshot);
    }
    let mut result = HashMap::new();
    for user in users {
        let mut snapshot =
            SubjectSnapshot::new(ScriptKind::User, script_id(SubjectKind::User, user.id));
        snapshot.email = Some(user.email);
        snapshot.first_name = user.first_name;
        snapshot.last_name = user.last_name;
        snapshot.attributes = user.attributes.as_object().cloned().unwrap_or_default();
        snapshot.tags = names(user_tags.get(&user.id));
        snapshot.account = user
            .account_id
            .and_then(|id| account_snapshots.get(&id).cloned())
            .map(Box::new);
        result.insert((SubjectKind::User, user.id), snapshot);
    }
    for (kind, id) in subjects {
        if *kind == SubjectKind::Account
            && let Some(snapshot) = account_snapshots.get(id)
        {
            result.insert((SubjectKind::Account, *id), snapshot.clone());
        }
    }
    Ok(result)
}

/// Subjects of one kind (`rows`, the read of `ids`) and their tags, read at once.
async fn with_tags<T>(
    db: &(impl ConnectionTrait + 'static),
    workspace_id: i64,
    kind: SubjectKind,
    ids: &[i64],
    rows: impl Future<Output = Result<Vec<T>, crate::subjects::SubjectError>>,
) -> Result<
    (
        Vec<T>,
        std::collections::HashMap<i64, Vec<entity::tag::Model>>,
    ),
    AutomationError,
> {
    tokio::try_join!(async { Ok(rows.await?) }, async {
        Ok(catalogue::subject_tags(db, workspace_id, kind, ids).await?)
    },)
}

//! The batched writer: many rows per transaction, set-based SQL.
//!
//! One batch is one write transaction: look up the subjects the rows name
//! (`email IN (...)`, `external_id IN (...)`), plan (`plan`), create the
//! accounts user rows name, insert the new subjects (multi-row `INSERT ...
//! RETURNING`), update the others (multi-row `INSERT ... ON CONFLICT (id)
//! DO UPDATE`, which only ever updates: the ids were just read in this
//! transaction), re-evaluate tracked segments for the field changes, then
//! add the tags through `tagging::assign::add_pairs`, the (tag, subject)
//! pairs of up to 2,000 subjects per call (source IMPORT), so history,
//! outbox events and segment triggers follow.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use entity::{account, user};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::ImportError;
use super::plan::{self, Action, ExistingAccount, ExistingUser};
use super::rows::{AccountRef, AccountRow, RowError, UserRow};
use crate::db::{begin_write, lost_race};
use crate::segments::membership::{self, Changed, MAX_IN_MEMORY, Reason};
use crate::subjects::SubjectKind;
use crate::subjects::batch::{self, UserFields};
use crate::tagging::assign::{Actor, add_pairs};
use crate::tags::name::TagName;
use crate::tags::write::Pairs;
use crate::tags::{Cause, Source};
use crate::time::{Clock, now};

/// Values per `IN (...)` list.
const IN_CHUNK: usize = 1_000;
/// A batch that loses a race with another writer (PostgreSQL: a unique key
/// taken meanwhile, a deadlock) is tried again.
const ATTEMPTS: usize = 3;

/// Writes batches of rows into one workspace.
pub struct Writer<'a> {
    pub db: &'a DatabaseConnection,
    pub workspace_id: i64,
    /// Recorded as the actor of the tag changes.
    pub actor: &'a str,
    pub clock: &'a Clock,
    /// Plan only: look up and count, write nothing.
    pub dry_run: bool,
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub created: u64,
    pub updated: u64,
    /// Tag assignments really created.
    pub tags_applied: u64,
    /// Rows skipped for a conflict.
    pub errors: Vec<RowError>,
}

impl Writer<'_> {
    fn actor(&self) -> Actor<'_> {
        Actor {
            source: Source::Import,
            name: Some(self.actor),
            cause: Cause::None,
            depth: 0,
        }
    }

    /// Upserts a batch of user rows (distinct emails and external ids) and adds their tags.
    pub async fn users(&self, rows: &[UserRow]) -> Result<Outcome, ImportError> {
        retry_lost_races(|| self.users_once(rows)).await
    }

    /// Upserts a batch of account rows (distinct keys) and adds their tags.
    pub async fn accounts(&self, rows: &[AccountRow]) -> Result<Outcome, ImportError> {
        retry_lost_races(|| self.accounts_once(rows)).await
    }

    async fn users_once(&self, rows: &[UserRow]) -> Result<Outcome, ImportError> {
        let ws = self.workspace_id;
        let mut outcome = Outcome::default();
        if self.dry_run {
            // Planned against what exists before the batch: a row that
            // depends on an earlier row of the batch (an email it frees) is
            // counted as if that row had not been written.
            let existing = lookup_users(self.db, ws, rows).await?;
            return Ok(dry_run(rows, &existing, plan::users, |r| r.line));
        }
        let txn = begin_write(self.db).await?;
        let mut ids: Vec<Option<i64>> = vec![None; rows.len()];
        let mut new_accounts: Vec<i64> = Vec::new();
        // The users this batch creates: their tags need no check.
        let mut created: HashSet<i64> = HashSet::new();
        let mut start = 0;
        while start < rows.len() {
            let pending = &rows[start..];
            let existing = lookup_users(&*txn, ws, pending).await?;
            let actions = plan::users(pending, &existing);
            count(&mut outcome, pending, &actions, |r| r.line);
            let planned: Vec<(usize, &UserRow, &Action)> = pending
                .iter()
                .zip(&actions)
                .enumerate()
                .map(|(i, (row, action))| (start + i, row, action))
                .collect();
            let refs: BTreeSet<&AccountRef> = planned
                .iter()
                .filter(|(_, _, action)| !matches!(action, Action::Conflict(_)))
                .filter_map(|(_, row, _)| row.account.as_ref())
                .collect();
            let accounts = resolve_accounts(&*txn, ws, refs, &mut new_accounts).await?;
            let account_of = |row: &UserRow| row.account.as_ref().and_then(|a| accounts.get(a));
            let at = now();
            let mut updates = Vec::new();
            let mut inserts = Vec::new();
            for (i, row, action) in &planned {
                match action {
                    Action::Update { id } => {
                        ids[*i] = Some(*id);
                        updates.push((*id, user_fields(row, account_of(row).copied())));
                    }
                    Action::Insert => {
                        inserts.push((*i, user_fields(row, account_of(row).copied())))
                    }
                    Action::Conflict(_) => {}
                }
            }
            batch::update_users(&*txn, ws, &updates, at).await?;
            let new: Vec<UserFields> = inserts.iter().map(|(_, fields)| *fields).collect();
            let inserted = batch::insert_users(&*txn, ws, &new, at).await?;
            for ((i, _), id) in inserts.iter().zip(inserted) {
                ids[*i] = id;
                created.extend(id);
            }
            start += actions.len();
        }
        let changed: Vec<Changed> = ids
            .iter()
            .flatten()
            .map(|&id| changed(SubjectKind::User, id))
            .chain(
                new_accounts
                    .iter()
                    .map(|&id| changed(SubjectKind::Account, id)),
            )
            .collect();
        self.reevaluate(&txn, &changed).await?;
        let tagged = rows
            .iter()
            .zip(&ids)
            .filter_map(|(row, id)| Some(((*id)?, &row.tags)));
        outcome.tags_applied = self.tag(&txn, SubjectKind::User, tagged, &created).await?;
        txn.commit().await?;
        Ok(outcome)
    }

    async fn accounts_once(&self, rows: &[AccountRow]) -> Result<Outcome, ImportError> {
        let ws = self.workspace_id;
        let mut outcome = Outcome::default();
        if self.dry_run {
            let existing = lookup_accounts(self.db, ws, rows).await?;
            return Ok(dry_run(rows, &existing, plan::accounts, |r| r.line));
        }
        let txn = begin_write(self.db).await?;
        let mut ids: Vec<Option<i64>> = vec![None; rows.len()];
        let mut created: HashSet<i64> = HashSet::new();
        let mut start = 0;
        while start < rows.len() {
            let pending = &rows[start..];
            let existing = lookup_accounts(&*txn, ws, pending).await?;
            let names: HashMap<i64, &str> =
                existing.iter().map(|a| (a.id, a.name.as_str())).collect();
            let actions = plan::accounts(pending, &existing);
            count(&mut outcome, pending, &actions, |r| r.line);
            let at = now();
            let mut updates = Vec::new();
            let mut inserts = Vec::new();
            for (i, (row, action)) in pending.iter().zip(&actions).enumerate() {
                match action {
                    Action::Update { id } => {
                        ids[start + i] = Some(*id);
                        let name = row
                            .name
                            .clone()
                            .or_else(|| names.get(id).map(|n| (*n).to_owned()))
                            .unwrap_or_default();
                        updates.push((*id, row, name));
                    }
                    Action::Insert => inserts.push((start + i, row)),
                    Action::Conflict(_) => {}
                }
            }
            let updates: Vec<(i64, Option<&str>, &str)> = updates
                .iter()
                .map(|(id, row, name)| (*id, row.external_id.as_deref(), name.as_str()))
                .collect();
            batch::update_accounts(&*txn, ws, &updates, at).await?;
            let new: Vec<(Option<&str>, &str)> = inserts
                .iter()
                .map(|(_, row)| {
                    let name = row.name.as_deref().or(row.external_id.as_deref());
                    (row.external_id.as_deref(), name.unwrap_or_default())
                })
                .collect();
            let inserted = batch::insert_accounts(&*txn, ws, &new, at).await?;
            for ((i, _), id) in inserts.iter().zip(inserted) {
                ids[*i] = Some(id);
                created.insert(id);
            }
            start += actions.len();
        }
        let changed: Vec<Changed> = ids
            .iter()
            .flatten()
            .map(|&id| changed(SubjectKind::Account, id))
            .collect();
        self.reevaluate(&txn, &changed).await?;
        let tagged = rows
            .iter()
            .zip(&ids)
            .filter_map(|(row, id)| Some(((*id)?, &row.tags)));
        outcome.tags_applied = self
            .tag(&txn, SubjectKind::Account, tagged, &created)
            .await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// Lets tracked segments see the field changes, in chunks small
    /// enough to be evaluated in memory.
    async fn reevaluate(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        changed: &[Changed],
    ) -> Result<(), ImportError> {
        for chunk in changed.chunks(MAX_IN_MEMORY) {
            membership::reevaluate(
                txn,
                self.workspace_id,
                chunk,
                Reason::Fields,
                0,
                self.clock.now(),
            )
            .await?;
        }
        Ok(())
    }

    /// Adds each row's tags to its subject, through the one tag write path
    /// (all the batch's (tag, subject) pairs in one write per 2,000
    /// subjects); `created` are the subjects this transaction made, which
    /// have no tags yet. Returns the assignments created.
    async fn tag<'r>(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        kind: SubjectKind,
        rows: impl Iterator<Item = (i64, &'r Vec<TagName>)>,
        created: &HashSet<i64>,
    ) -> Result<u64, ImportError> {
        let mut by_subject: BTreeMap<i64, BTreeSet<&TagName>> = BTreeMap::new();
        for (id, tags) in rows {
            by_subject.entry(id).or_default().extend(tags);
        }
        // Every tag of the batch is made and locked first, in the order
        // every tag writer locks tags in (see `lock_tags`): locked chunk by
        // chunk, two imports could each hold a tag the other's next chunk
        // waits for.
        let names: BTreeSet<&TagName> = by_subject.values().flatten().copied().collect();
        let names: Vec<TagName> = names.into_iter().cloned().collect();
        let tags = crate::tags::store::ensure(txn, self.workspace_id, &names).await?;
        let tag_ids: Vec<i64> = tags.iter().map(|t| t.id).collect();
        crate::tags::write::lock_tags(txn, &tag_ids).await?;
        let tag_id: HashMap<&str, i64> = tags.iter().map(|t| (t.name.as_str(), t.id)).collect();
        let mut applied = 0;
        let subjects: Vec<(i64, BTreeSet<&TagName>)> = by_subject.into_iter().collect();
        // At most MAX_IN_MEMORY subjects per write, so segment triggers
        // re-evaluate those subjects in memory.
        for chunk in subjects.chunks(MAX_IN_MEMORY) {
            let mut pairs = Pairs::default();
            for (id, names) in chunk {
                let of_subject = if created.contains(id) {
                    &mut pairs.created
                } else {
                    &mut pairs.existing
                };
                for name in names {
                    let tag = tag_id.get(name.as_str()).copied().ok_or_else(|| {
                        DbErr::Custom(format!("tag {} was not made", name.as_str()))
                    })?;
                    of_subject.push((tag, *id));
                }
            }
            applied += add_pairs(
                txn,
                self.workspace_id,
                kind,
                &pairs,
                self.actor(),
                self.clock,
            )
            .await?;
        }
        Ok(applied)
    }
}

/// Keeps PostgreSQL's planner statistics in step with an import: planned
/// while the tables were small, the tag write path's statements would go
/// on scanning them whole (1,800 rows/s and falling on a fresh database).
/// The tables an import grows are analyzed each time the import has written
/// as many rows as the users table held when last counted (at least
/// [`Statistics::FIRST`]): after 5,000, 10,000, 20,000, ... rows on a fresh
/// database, never for an import small beside the data already there (many
/// small `importUsers` calls analyzed six tables twice each).
pub struct Statistics {
    postgres: bool,
    known: u64,
    written: u64,
}

impl Statistics {
    /// Rows written before the first refresh, however small the tables.
    pub const FIRST: u64 = 5_000;

    pub async fn start(db: &DatabaseConnection) -> Result<Self, DbErr> {
        let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let mut known = 0;
        if postgres {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = 'users'::regclass",
                ))
                .await?;
            if let Some(row) = row {
                known = u64::try_from(row.try_get_by_index::<i64>(0)?).unwrap_or(0);
            }
        }
        Ok(Statistics {
            postgres,
            known,
            written: 0,
        })
    }

    /// Counts a written batch of `rows`; refreshes the statistics when due.
    pub async fn written(&mut self, db: &DatabaseConnection, rows: u64) -> Result<(), DbErr> {
        if !self.postgres {
            return Ok(());
        }
        self.written += rows;
        if self.written >= Ord::max(self.known, Self::FIRST) {
            db.execute_unprepared(
                "ANALYZE users, accounts, tags, tag_changes, tag_assignments, automation_events",
            )
            .await?;
            self.known += self.written;
            self.written = 0;
        }
        Ok(())
    }
}

/// A user row's fields as the batch writes them.
fn user_fields(row: &UserRow, account_id: Option<i64>) -> UserFields<'_> {
    UserFields {
        external_id: row.external_id.as_deref(),
        email: row.email.as_str(),
        first_name: row.first_name.as_deref(),
        last_name: row.last_name.as_deref(),
        account_id,
    }
}

fn changed(kind: SubjectKind, id: i64) -> Changed {
    Changed {
        kind,
        id,
        cause: None,
    }
}

/// Runs one try of a batch, and again (up to `ATTEMPTS` tries in all) when
/// it lost a race with another writer (PostgreSQL: a unique key taken
/// meanwhile, a deadlock); the failed try wrote nothing.
async fn retry_lost_races<F: Future<Output = Result<Outcome, ImportError>>>(
    mut once: impl FnMut() -> F,
) -> Result<Outcome, ImportError> {
    let mut attempt = 1;
    loop {
        match once().await {
            Err(ImportError::Db(e)) if lost_race(&e) && attempt < ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// What a dry run counts: the rows planned, in turns as a write would plan
/// them, all against what existed before the batch.
fn dry_run<R, E>(
    rows: &[R],
    existing: &[E],
    plan: impl Fn(&[R], &[E]) -> Vec<Action>,
    line: impl Fn(&R) -> u64,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut start = 0;
    while start < rows.len() {
        let actions = plan(&rows[start..], existing);
        count(&mut outcome, &rows[start..], &actions, &line);
        start += actions.len();
    }
    outcome
}

/// Adds a batch's actions to the counts; conflicts become row errors.
fn count<R>(outcome: &mut Outcome, rows: &[R], actions: &[Action], line: impl Fn(&R) -> u64) {
    for (row, action) in rows.iter().zip(actions) {
        match action {
            Action::Insert => outcome.created += 1,
            Action::Update { .. } => outcome.updated += 1,
            Action::Conflict(message) => outcome.errors.push(RowError {
                line: line(row),
                message: format!("skipped: {message}"),
            }),
        }
    }
}

/// The users of the workspace that have one of the rows' emails or external ids.
async fn lookup_users(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    rows: &[UserRow],
) -> Result<Vec<ExistingUser>, DbErr> {
    let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
    let external_ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.external_id.as_deref())
        .collect();
    let mut found: BTreeMap<i64, ExistingUser> = BTreeMap::new();
    for (column, values) in [
        (user::Column::Email, &emails),
        (user::Column::ExternalId, &external_ids),
    ] {
        for chunk in values.chunks(IN_CHUNK) {
            let rows: Vec<(i64, String, Option<String>)> = user::Entity::find()
                .select_only()
                .columns([
                    user::Column::Id,
                    user::Column::Email,
                    user::Column::ExternalId,
                ])
                .filter(user::Column::WorkspaceId.eq(workspace_id))
                .filter(column.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(db)
                .await?;
            for (id, email, external_id) in rows {
                found.insert(
                    id,
                    ExistingUser {
                        id,
                        email,
                        external_id,
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The accounts of the workspace that have one of the rows' external ids,
/// or (for rows without one) names.
async fn lookup_accounts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    rows: &[AccountRow],
) -> Result<Vec<ExistingAccount>, DbErr> {
    let external_ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.external_id.as_deref())
        .collect();
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| r.external_id.is_none())
        .filter_map(|r| r.name.as_deref())
        .collect();
    find_accounts(db, workspace_id, &external_ids, &names).await
}

async fn find_accounts(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    external_ids: &[&str],
    names: &[&str],
) -> Result<Vec<ExistingAccount>, DbErr> {
    let mut found: BTreeMap<i64, ExistingAccount> = BTreeMap::new();
    for (column, values) in [
        (account::Column::ExternalId, external_ids),
        (account::Column::Name, names),
    ] {
        for chunk in values.chunks(IN_CHUNK) {
            let rows: Vec<(i64, Option<String>, String)> = account::Entity::find()
                .select_only()
                .columns([
                    account::Column::Id,
                    account::Column::ExternalId,
                    account::Column::Name,
                ])
                .filter(account::Column::WorkspaceId.eq(workspace_id))
                .filter(column.is_in(chunk.iter().copied()))
                .order_by_asc(account::Column::Id)
                .into_tuple()
                .all(db)
                .await?;
            for (id, external_id, name) in rows {
                found.insert(
                    id,
                    ExistingAccount {
                        id,
                        external_id,
                        name,
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The ids of the accounts user rows name: found by external id, else by
/// name (the oldest of that name), created when missing (`new` collects them).
async fn resolve_accounts<'r>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    refs: BTreeSet<&'r AccountRef>,
    new: &mut Vec<i64>,
) -> Result<HashMap<&'r AccountRef, i64>, DbErr> {
    if refs.is_empty() {
        return Ok(HashMap::new());
    }
    let external_ids: Vec<&str> = refs
        .iter()
        .filter_map(|r| match r {
            AccountRef::ExternalId { external_id, .. } => Some(external_id.as_str()),
            AccountRef::Name(_) => None,
        })
        .collect();
    let names: Vec<&str> = refs
        .iter()
        .filter_map(|r| match r {
            AccountRef::Name(name) => Some(name.as_str()),
            AccountRef::ExternalId { .. } => None,
        })
        .collect();
    let existing = find_accounts(db, workspace_id, &external_ids, &names).await?;
    let mut by_external_id: HashMap<&str, i64> = HashMap::new();
    let mut by_name: HashMap<&str, i64> = HashMap::new();
    for account in &existing {
        if let Some(x) = &account.external_id {
            by_external_id.insert(x, account.id);
        }
        by_name.entry(account.name.as_str()).or_insert(account.id);
    }
    let mut resolved: HashMap<&AccountRef, i64> = HashMap::new();
    let mut missing: Vec<(&AccountRef, (Option<&str>, &str))> = Vec::new();
    // Two refs with the same external id (different names) are one account.
    let mut wanted: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &refs {
        let found = match r {
            AccountRef::ExternalId { external_id, name } => {
                let found = by_external_id.get(external_id.as_str()).copied();
                if found.is_none() {
                    wanted
                        .entry(external_id)
                        .or_insert(name.as_deref().unwrap_or(external_id));
                }
                found
            }
            AccountRef::Name(name) => {
                let found = by_name.get(name.as_str()).copied();
                if found.is_none() {
                    missing.push((r, (None, name.as_str())));
                }
                found
            }
        };
        if let Some(id) = found {
            resolved.insert(r, id);
        }
    }
    let mut to_create: Vec<(Option<&str>, &str)> =
        wanted.iter().map(|(x, name)| (Some(*x), *name)).collect();
    to_create.extend(missing.iter().map(|(_, key)| *key));
    let created = batch::insert_accounts(db, workspace_id, &to_create, now()).await?;
    new.extend(&created);
    let created: HashMap<(Option<&str>, &str), i64> = to_create.into_iter().zip(created).collect();
    for r in &refs {
        if resolved.contains_key(r) {
            continue;
        }
        let id = match r {
            AccountRef::ExternalId { external_id, .. } => wanted
                .get(external_id.as_str())
                .and_then(|name| created.get(&(Some(external_id.as_str()), *name))),
            AccountRef::Name(name) => created.get(&(None, name.as_str())),
        };
        if let Some(id) = id {
            resolved.insert(r, *id);
        }
    }
    Ok(resolved)
}

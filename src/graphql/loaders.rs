//! DataLoaders: related rows of a whole page in one query, never one per row.
//! Each loader is made per request and bound to the caller's workspace.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{account, script, segment, tag, user};
use sea_orm::DatabaseConnection;

use crate::app::references::{self, Usage};
use crate::automation::scripts::{self, Scripts};
use crate::error::ApiError;
use crate::segments::membership::Segments;
use crate::subjects::{SubjectKind, accounts, users};
use crate::tags::{catalogue, store};
use crate::time::Clock;

/// What every loader needs: the database and the caller's workspace.
#[derive(Clone)]
pub struct Scope {
    pub db: DatabaseConnection,
    pub workspace_id: i64,
    /// What segment filters read as `now`.
    pub clock: Clock,
    /// Compiled scripts (the tags they name).
    pub scripts: Arc<Scripts>,
}

type LoadResult<K, V> = Result<HashMap<K, V>, ApiError>;

/// Accounts by id.
pub struct AccountLoader(Scope);

impl Loader<i64> for AccountLoader {
    type Value = account::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = accounts::find_many(&self.0.db, self.0.workspace_id, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Users by id.
pub struct UserLoader(Scope);

impl Loader<i64> for UserLoader {
    type Value = user::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = users::find_many(&self.0.db, self.0.workspace_id, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Scripts by id.
pub struct ScriptLoader(Scope);

impl Loader<i64> for ScriptLoader {
    type Value = script::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = scripts::find_many(&self.0.db, self.0.workspace_id, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Tags by id (deleted ones too: history names them).
pub struct TagLoader(Scope);

impl Loader<i64> for TagLoader {
    type Value = tag::Model;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = store::find_many(&self.0.db, self.0.workspace_id, keys).await?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// How many (accounts, users) carry each tag.
pub struct TagCountLoader(Scope);

impl Loader<i64> for TagCountLoader {
    type Value = (u64, u64);
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        Ok(catalogue::counts(&self.0.db, self.0.workspace_id, keys).await?)
    }
}

/// Where each tag is named (segments, scripts): three statements a page.
pub struct TagUsageLoader(Scope);

impl Loader<i64> for TagUsageLoader {
    type Value = Usage;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let Scope {
            db,
            workspace_id,
            scripts,
            ..
        } = &self.0;
        let tags = store::find_many(db, *workspace_id, keys).await?;
        Ok(references::usage(db, scripts, *workspace_id, &tags).await?)
    }
}

/// The segments that name each segment (by id) through `in_segment`: one
/// statement a page.
pub struct SegmentUsersLoader(Scope);

impl Loader<i64> for SegmentUsersLoader {
    type Value = Vec<segment::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let segments = Segments::load(&self.0.db, self.0.workspace_id).await?;
        Ok(segments
            .all
            .iter()
            .filter(|s| keys.contains(&s.id))
            .map(|s| {
                let mut users: Vec<segment::Model> =
                    crate::segments::store::dependents(&segments, &s.name)
                        .into_iter()
                        .cloned()
                        .collect();
                users.sort_by(|a, b| a.name.cmp(&b.name));
                (s.id, users)
            })
            .collect())
    }
}

/// The live children of each tag.
pub struct TagChildrenLoader(Scope);

impl Loader<i64> for TagChildrenLoader {
    type Value = Vec<tag::Model>;
    type Error = ApiError;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        Ok(catalogue::children(&self.0.db, self.0.workspace_id, keys).await?)
    }
}

/// The tags of each subject.
pub struct SubjectTagsLoader(Scope);

impl Loader<(SubjectKind, i64)> for SubjectTagsLoader {
    type Value = Vec<tag::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(SubjectKind, i64)],
    ) -> LoadResult<(SubjectKind, i64), Self::Value> {
        let mut result = HashMap::new();
        for kind in [SubjectKind::Account, SubjectKind::User] {
            let ids: Vec<i64> = keys
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, id)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let tags = catalogue::subject_tags(&self.0.db, self.0.workspace_id, kind, &ids).await?;
            for id in ids {
                result.insert((kind, id), tags.get(&id).cloned().unwrap_or_default());
            }
        }
        Ok(result)
    }
}

/// The segments each subject is a member of now (evaluated live): one
/// query per segment of the subjects' kind, whatever the number of subjects.
pub struct SubjectSegmentsLoader(Scope);

impl Loader<(SubjectKind, i64)> for SubjectSegmentsLoader {
    type Value = Vec<segment::Model>;
    type Error = ApiError;

    async fn load(
        &self,
        keys: &[(SubjectKind, i64)],
    ) -> LoadResult<(SubjectKind, i64), Self::Value> {
        let Scope {
            db,
            workspace_id,
            clock,
            ..
        } = &self.0;
        Ok(crate::segments::store::segments_of(db, *workspace_id, keys, clock.now()).await?)
    }
}

type Cached<L> = Arc<DataLoader<L, HashMapCache>>;

/// The loaders of one request (or WebSocket connection); each caches what it
/// loaded until cleared. Clones share the loaders.
#[derive(Clone)]
pub struct Loaders {
    pub accounts: Cached<AccountLoader>,
    pub users: Cached<UserLoader>,
    pub tags: Cached<TagLoader>,
    pub tag_counts: Cached<TagCountLoader>,
    pub tag_children: Cached<TagChildrenLoader>,
    pub tag_usage: Cached<TagUsageLoader>,
    pub segment_users: Cached<SegmentUsersLoader>,
    pub subject_tags: Cached<SubjectTagsLoader>,
    pub scripts: Cached<ScriptLoader>,
    pub subject_segments: Cached<SubjectSegmentsLoader>,
}

fn cached<L: Send + Sync + 'static>(loader: L) -> Cached<L> {
    Arc::new(DataLoader::with_cache(
        loader,
        tokio::spawn,
        HashMapCache::default(),
    ))
}

impl Loaders {
    pub fn new(
        db: &DatabaseConnection,
        workspace_id: i64,
        clock: &Clock,
        scripts: &Arc<Scripts>,
    ) -> Self {
        let scope = Scope {
            db: db.clone(),
            workspace_id,
            clock: clock.clone(),
            scripts: Arc::clone(scripts),
        };
        Loaders {
            accounts: cached(AccountLoader(scope.clone())),
            users: cached(UserLoader(scope.clone())),
            tags: cached(TagLoader(scope.clone())),
            tag_counts: cached(TagCountLoader(scope.clone())),
            tag_children: cached(TagChildrenLoader(scope.clone())),
            tag_usage: cached(TagUsageLoader(scope.clone())),
            segment_users: cached(SegmentUsersLoader(scope.clone())),
            subject_tags: cached(SubjectTagsLoader(scope.clone())),
            subject_segments: cached(SubjectSegmentsLoader(scope.clone())),
            scripts: cached(ScriptLoader(scope)),
        }
    }

    /// Forgets everything loaded so far.
    pub fn clear(&self) {
        self.accounts.clear::<i64>();
        self.users.clear::<i64>();
        self.tags.clear::<i64>();
        self.tag_counts.clear::<i64>();
        self.tag_children.clear::<i64>();
        self.tag_usage.clear::<i64>();
        self.segment_users.clear::<i64>();
        self.subject_tags.clear::<(SubjectKind, i64)>();
        self.scripts.clear::<i64>();
        self.subject_segments.clear::<(SubjectKind, i64)>();
    }
}

/// What the subjects being primed are, as the selection sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The nodes of a connection (`nodes { ... }` or `edges { node { ... } }`).
    Page,
    /// The field's own value (`user(id:) { ... }`).
    Single,
}

/// Whether the selection asks for `path` below each subject.
fn selects(look: &async_graphql::Lookahead<'_>, shape: Shape, path: &[&str]) -> bool {
    let below = |mut at: async_graphql::Lookahead<'_>, path: &[&str]| {
        for field in path {
            at = at.field(field);
        }
        at.exists()
    };
    match shape {
        Shape::Page => {
            below(look.field("nodes"), path) || below(look.field("edges").field("node"), path)
        }
        Shape::Single => match path.split_first() {
            Some((first, rest)) => below(look.field(first), rest),
            None => true,
        },
    }
}

/// Loads what the selection will ask of a page of subjects in one batch per
/// kind of data (their tags and tag counts; for users, their accounts and
/// the accounts' tags), so that the rows' resolvers find it in the request
/// cache: the number of statements does not depend on the page size.
pub async fn prime_subjects(
    ctx: &async_graphql::Context<'_>,
    shape: Shape,
    kind: SubjectKind,
    ids: &[i64],
    account_ids: &[i64],
) -> Result<(), ApiError> {
    prime(ctx, shape, kind, ids, account_ids, Loaded::default()).await
}

/// What is in the request's cache already when priming.
#[derive(Debug, Clone, Copy, Default)]
struct Loaded {
    /// The subjects' own tags.
    own_tags: bool,
    /// The users' accounts.
    accounts: bool,
}

/// [`prime_subjects`], but for what is `loaded` already.
async fn prime(
    ctx: &async_graphql::Context<'_>,
    shape: Shape,
    kind: SubjectKind,
    ids: &[i64],
    account_ids: &[i64],
    loaded: Loaded,
) -> Result<(), ApiError> {
    let look = ctx.look_ahead();
    let loaders = super::context::loaders(ctx)?;
    let mut tag_keys: Vec<(SubjectKind, i64)> = Vec::new();
    if !loaded.own_tags && selects(&look, shape, &["tags"]) {
        tag_keys.extend(ids.iter().map(|id| (kind, *id)));
    }
    let accounts = kind == SubjectKind::User && selects(&look, shape, &["account"]);
    if accounts && selects(&look, shape, &["account", "tags"]) {
        tag_keys.extend(account_ids.iter().map(|id| (SubjectKind::Account, *id)));
    }
    // The accounts and the tags at once, each in one statement.
    let (_, tags) = futures_util::future::try_join(
        async {
            match accounts && !loaded.accounts {
                true => load_now(&loaders.accounts, account_ids.to_vec()).await,
                false => Ok(HashMap::new()),
            }
        },
        load_now(&loaders.subject_tags, tag_keys),
    )
    .await?;
    let counted = ["userCount", "accountCount"].iter().any(|f| {
        selects(&look, shape, &["tags", f]) || selects(&look, shape, &["account", "tags", f])
    });
    if counted {
        let mut tag_ids: Vec<i64> = tags.values().flatten().map(|t| t.id).collect();
        tag_ids.sort_unstable();
        tag_ids.dedup();
        load_now(&loaders.tag_counts, tag_ids).await?;
    }
    Ok(())
}

/// Loads `keys` in one call of the loader, at once, and keeps the values in
/// the request's cache for the rows' resolvers. `load_many` would first
/// wait the DataLoader's batching delay (1 ms, often 2 with the timer's
/// granularity) for more keys, which a page that knows all of them does
/// not need: two such waits were most of a 50-user list's latency.
async fn load_now<K, L>(loader: &Cached<L>, keys: Vec<K>) -> Result<HashMap<K, L::Value>, ApiError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    L: Loader<K, Error = ApiError>,
{
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let found = loader.loader().load(&keys).await?;
    loader
        .feed_many(found.iter().map(|(k, v)| (k.clone(), v.clone())))
        .await;
    Ok(found)
}

/// [`prime_subjects`] for a page of users (their accounts too).
pub async fn prime_users(
    ctx: &async_graphql::Context<'_>,
    shape: Shape,
    rows: &[user::Model],
) -> Result<(), ApiError> {
    let ids: Vec<i64> = rows.iter().map(|u| u.id).collect();
    let mut account_ids: Vec<i64> = rows.iter().filter_map(|u| u.account_id).collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    prime_subjects(ctx, shape, SubjectKind::User, &ids, &account_ids).await
}

/// Whether to read a user with its account in one statement (a join):
/// when the selection asks for the account and the database is not a
/// SQLite file, whose reader makes the accounts' batch a cheap hop (on
/// PostgreSQL each statement is a round trip).
fn join_accounts(ctx: &async_graphql::Context<'_>, shape: Shape, db: &DatabaseConnection) -> bool {
    selects(&ctx.look_ahead(), shape, &["account"]) && crate::sqlite_read::reader(db).is_none()
}

/// One user by id with what the selection asks of it. Its tags load while
/// the user is read (the id is known; the tags of an id of another
/// workspace are never found, as they are filtered by workspace); on
/// PostgreSQL its account comes with it in one statement: one round trip
/// of two statements where it took three one after the other.
pub async fn user_by_id(
    ctx: &async_graphql::Context<'_>,
    db: &DatabaseConnection,
    workspace_id: i64,
    id: i64,
) -> Result<Option<user::Model>, ApiError> {
    let loaders = super::context::loaders(ctx)?;
    let tags = selects(&ctx.look_ahead(), Shape::Single, &["tags"]);
    let joined = join_accounts(ctx, Shape::Single, db);
    let find = async {
        Ok::<_, ApiError>(match joined {
            true => users::find_with_account(db, workspace_id, id).await?,
            false => users::find(db, workspace_id, id).await?.map(|u| (u, None)),
        })
    };
    let (found, _) = futures_util::future::try_join(find, async {
        match tags {
            true => load_now(&loaders.subject_tags, vec![(SubjectKind::User, id)]).await,
            false => Ok(HashMap::new()),
        }
    })
    .await?;
    let Some((user, account)) = found else {
        return Ok(None);
    };
    // A joined account goes to the request's cache as it is.
    let account_ids: Vec<i64> = match account {
        Some(account) => {
            let id = account.id;
            loaders.accounts.feed_one(id, account).await;
            vec![id]
        }
        None if joined => Vec::new(),
        None => user.account_id.into_iter().collect(),
    };
    let loaded = Loaded {
        own_tags: tags,
        accounts: joined,
    };
    prime(
        ctx,
        Shape::Single,
        SubjectKind::User,
        &[user.id],
        &account_ids,
        loaded,
    )
    .await?;
    Ok(Some(user))
}

/// [`prime_subjects`] for a page of accounts.
pub async fn prime_accounts(
    ctx: &async_graphql::Context<'_>,
    shape: Shape,
    rows: &[account::Model],
) -> Result<(), ApiError> {
    let ids: Vec<i64> = rows.iter().map(|a| a.id).collect();
    prime_subjects(ctx, shape, SubjectKind::Account, &ids, &[]).await
}

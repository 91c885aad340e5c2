//! DataLoaders: related rows of a whole page in one query, never one per row.
//! Each loader is made per request and bound to the caller's workspace.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{account, tag, user};
use sea_orm::DatabaseConnection;

use crate::error::ApiError;
use crate::subjects::{SubjectKind, accounts, users};
use crate::tags::{catalogue, store};

/// What every loader needs: the database and the caller's workspace.
#[derive(Clone)]
pub struct Scope {
    pub db: DatabaseConnection,
    pub workspace_id: i64,
}

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

/// Accounts by id.
pub struct AccountLoader(Scope);

impl Loader<i64> for AccountLoader {
    type Value = account::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = accounts::find_many(&self.0.db, self.0.workspace_id, keys)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Users by id.
pub struct UserLoader(Scope);

impl Loader<i64> for UserLoader {
    type Value = user::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = users::find_many(&self.0.db, self.0.workspace_id, keys)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// Tags by id (deleted ones too: history names them).
pub struct TagLoader(Scope);

impl Loader<i64> for TagLoader {
    type Value = tag::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        let rows = store::find_many(&self.0.db, self.0.workspace_id, keys)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// How many (accounts, users) carry each tag.
pub struct TagCountLoader(Scope);

impl Loader<i64> for TagCountLoader {
    type Value = (u64, u64);
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        Ok(catalogue::counts(&self.0.db, self.0.workspace_id, keys)
            .await
            .map_err(ApiError::from)?)
    }
}

/// The live children of each tag.
pub struct TagChildrenLoader(Scope);

impl Loader<i64> for TagChildrenLoader {
    type Value = Vec<tag::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> LoadResult<i64, Self::Value> {
        Ok(catalogue::children(&self.0.db, self.0.workspace_id, keys)
            .await
            .map_err(ApiError::from)?)
    }
}

/// The tags of each subject.
pub struct SubjectTagsLoader(Scope);

impl Loader<(SubjectKind, i64)> for SubjectTagsLoader {
    type Value = Vec<tag::Model>;
    type Error = async_graphql::Error;

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
            let tags = catalogue::subject_tags(&self.0.db, self.0.workspace_id, kind, &ids)
                .await
                .map_err(ApiError::from)?;
            for id in ids {
                result.insert((kind, id), tags.get(&id).cloned().unwrap_or_default());
            }
        }
        Ok(result)
    }
}

/// The loaders of one request.
pub struct Loaders {
    pub accounts: DataLoader<AccountLoader>,
    pub users: DataLoader<UserLoader>,
    pub tags: DataLoader<TagLoader>,
    pub tag_counts: DataLoader<TagCountLoader>,
    pub tag_children: DataLoader<TagChildrenLoader>,
    pub subject_tags: DataLoader<SubjectTagsLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, workspace_id: i64) -> Self {
        let scope = Scope {
            db: db.clone(),
            workspace_id,
        };
        Loaders {
            accounts: DataLoader::new(AccountLoader(scope.clone()), tokio::spawn),
            users: DataLoader::new(UserLoader(scope.clone()), tokio::spawn),
            tags: DataLoader::new(TagLoader(scope.clone()), tokio::spawn),
            tag_counts: DataLoader::new(TagCountLoader(scope.clone()), tokio::spawn),
            tag_children: DataLoader::new(TagChildrenLoader(scope.clone()), tokio::spawn),
            subject_tags: DataLoader::new(SubjectTagsLoader(scope), tokio::spawn),
        }
    }
}

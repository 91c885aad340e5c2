//! DataLoaders: related rows of a whole page in one query, never one per row.
//! Each loader is made per request and bound to the caller's workspace.

use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, Loader};
use entity::account;
use sea_orm::DatabaseConnection;

use crate::error::ApiError;
use crate::subjects::accounts;

/// Accounts by id.
pub struct AccountLoader {
    pub db: DatabaseConnection,
    pub workspace_id: i64,
}

impl Loader<i64> for AccountLoader {
    type Value = account::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = accounts::find_many(&self.db, self.workspace_id, keys)
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

/// The loaders of one request.
pub struct Loaders {
    pub accounts: DataLoader<AccountLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, workspace_id: i64) -> Self {
        Loaders {
            accounts: DataLoader::new(
                AccountLoader {
                    db: db.clone(),
                    workspace_id,
                },
                tokio::spawn,
            ),
        }
    }
}

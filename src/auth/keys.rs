//! API keys: created with a random secret shown once; stored as its SHA-256.

use entity::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{AuthError, Caller, Role};
use crate::time::now;

/// Every secret starts with this, so leaked keys are easy to recognize.
const SECRET_PREFIX: &str = "tsk_";

/// A key just created, with its secret (never retrievable again).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub name: String,
    pub role: Role,
    pub secret: String,
}

/// Creates a key in a workspace.
pub async fn create(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
    role: Role,
) -> Result<CreatedKey, AuthError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AuthError::BadInput(
            "a key name is 1 to 100 characters, without control characters".into(),
        ));
    }
    let secret = new_secret()?;
    api_key::ActiveModel {
        workspace_id: Set(workspace_id),
        name: Set(name.to_owned()),
        secret_hash: Set(hash_secret(&secret)),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now()),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(CreatedKey {
        name: name.to_owned(),
        role,
        secret,
    })
}

/// Revokes every active key of that name in the workspace; returns how many.
pub async fn revoke(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    name: &str,
) -> Result<usize, AuthError> {
    let keys = api_key::Entity::find()
        .filter(api_key::Column::WorkspaceId.eq(workspace_id))
        .filter(api_key::Column::Name.eq(name.trim()))
        .filter(api_key::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    if keys.is_empty() {
        return Err(AuthError::UnknownKey(name.trim().to_owned()));
    }
    let count = keys.len();
    for key in keys {
        let mut active = key.into_active_model();
        active.revoked_at = Set(Some(now()));
        active.update(db).await?;
    }
    Ok(count)
}

/// Which of the keys `ids` are still active (neither revoked nor gone).
pub async fn active_among(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<std::collections::HashSet<i64>, AuthError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let active = api_key::Entity::find()
        .select_only()
        .column(api_key::Column::Id)
        .filter(api_key::Column::Id.is_in(ids.iter().copied()))
        .filter(api_key::Column::RevokedAt.is_null())
        .into_tuple::<i64>()
        .all(db)
        .await?;
    Ok(active.into_iter().collect())
}

/// Finds the caller behind a secret; unknown and revoked keys are `InvalidKey`.
pub async fn authenticate(db: &impl ConnectionTrait, secret: &str) -> Result<Caller, AuthError> {
    find(db, &checked_hash(secret)?).await
}

/// The hash of a well-formed secret (`InvalidKey` for another).
fn checked_hash(secret: &str) -> Result<String, AuthError> {
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 200 {
        return Err(AuthError::InvalidKey);
    }
    Ok(hash_secret(secret))
}

/// The caller behind a secret's hash.
async fn find(db: &impl ConnectionTrait, hash: &str) -> Result<Caller, AuthError> {
    let key = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(hash))
        .one(db)
        .await?
        .filter(|key| key.revoked_at.is_none())
        .ok_or(AuthError::InvalidKey)?;
    let role = key.role.parse().map_err(|_| AuthError::InvalidKey)?;
    Ok(Caller {
        workspace_id: key.workspace_id,
        key_id: key.id,
        key_name: key.name,
        role,
    })
}

/// How long a server trusts a key it has read, unless told otherwise
/// (`--api-key-cache-ms`): a key revoked through another server or the CLI
/// stops working here within this long.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Keys a server remembers at most.
const CACHE_CAPACITY: usize = 10_000;

/// The callers of recently used secrets, by their hash, for a short while:
/// a request does not read its key from the database when the same key was
/// read less than the time to live ago. Only valid keys are remembered. A
/// revocation through this server forgets them all at once
/// ([`KeyCache::forget_all`]); one elsewhere is seen within the time to live.
pub struct KeyCache {
    ttl: Duration,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    callers: HashMap<String, (Instant, Caller)>,
    /// Bumped by every `forget_all`: a lookup that began before it does
    /// not store what it read (the key may be revoked since).
    generation: u64,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new(CACHE_TTL)
    }
}

impl KeyCache {
    /// A cache keeping keys for `ttl` (zero: none).
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Like [`authenticate`], from the cache when the key was read lately.
    pub async fn authenticate(
        &self,
        db: &impl ConnectionTrait,
        secret: &str,
    ) -> Result<Caller, AuthError> {
        let hash = checked_hash(secret)?;
        let generation = {
            let state = self.state();
            if let Some((read, caller)) = state.callers.get(&hash)
                && read.elapsed() < self.ttl
            {
                return Ok(caller.clone());
            }
            state.generation
        };
        let caller = find(db, &hash).await?;
        if !self.ttl.is_zero() {
            let mut state = self.state();
            if state.generation == generation {
                if state.callers.len() >= CACHE_CAPACITY {
                    let ttl = self.ttl;
                    state.callers.retain(|_, (read, _)| read.elapsed() < ttl);
                    if state.callers.len() >= CACHE_CAPACITY {
                        state.callers.clear();
                    }
                }
                state.callers.insert(hash, (Instant::now(), caller.clone()));
            }
        }
        Ok(caller)
    }

    /// Forgets every key (keys were revoked): the next request of each
    /// reads its key again.
    pub fn forget_all(&self) {
        let mut state = self.state();
        state.callers.clear();
        state.generation += 1;
    }
}

fn new_secret() -> Result<String, AuthError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::NoRandomness(e.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// Lowercase hex SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_prefixed() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 48);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! API keys: created with a random secret shown once; stored as its SHA-256.

use entity::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};
use sha2::{Digest, Sha256};

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
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 200 {
        return Err(AuthError::InvalidKey);
    }
    let key = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(hash_secret(secret)))
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

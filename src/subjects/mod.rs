//! Accounts (companies) and users (contacts): validation and storage.
//!
//! Invariant: every function takes the caller's `workspace_id` and never
//! reads or writes a row of another workspace. Boundary: called by
//! `graphql/` and import; knows nothing of GraphQL.

pub mod accounts;
pub mod attributes;
pub mod batch;
pub mod email;
pub mod users;

use crate::error::{Code, ErrorCode};

pub use crate::vocab::{SubjectKind, page};

/// Errors about accounts and users.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error("invalid email \"{0}\": {1}")]
    InvalidEmail(String, &'static str),
    #[error("attributes must be a JSON object, not {0}")]
    AttributesNotObject(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("no account has externalId \"{0}\"")]
    UnknownAccountExternalId(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl From<crate::segments::SegmentError> for SubjectError {
    fn from(error: crate::segments::SegmentError) -> SubjectError {
        crate::error::carry(error, SubjectError::Invalid)
    }
}

impl crate::error::DbCause for SubjectError {
    fn into_db(self) -> Result<sea_orm::DbErr, Self> {
        match self {
            SubjectError::Db(e) => Ok(e),
            other => Err(other),
        }
    }
}

impl ErrorCode for SubjectError {
    fn code(&self) -> Code {
        match self {
            SubjectError::InvalidEmail(..)
            | SubjectError::AttributesNotObject(_)
            | SubjectError::Invalid(_)
            | SubjectError::UnknownAccountExternalId(_) => Code::BadUserInput,
            SubjectError::NotFound(_) => Code::NotFound,
            SubjectError::Conflict(_) => Code::Conflict,
            SubjectError::Db(_) => Code::Internal,
        }
    }
}

/// Checks a short text field (names, external ids): trimmed, 1..=max chars, no control characters.
pub fn clean_text(field: &str, value: &str, max: usize) -> Result<String, SubjectError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SubjectError::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(SubjectError::Invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(SubjectError::Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Deletes an account or a user with its tags and tag history (an
/// account's users stay, without an account). Returns whether it existed.
pub async fn delete(
    db: &sea_orm::DatabaseConnection,
    workspace_id: i64,
    kind: SubjectKind,
    id: i64,
    clock: &crate::time::Clock,
) -> Result<bool, SubjectError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let txn = crate::db::begin_write(db).await?;
    // A user's account has one user fewer afterwards (`any_user` filters).
    let account_of_user = match kind {
        SubjectKind::User => users::find(&txn, workspace_id, id)
            .await?
            .and_then(|u| u.account_id),
        SubjectKind::Account => None,
    };
    let deleted = match kind {
        SubjectKind::Account => {
            entity::account::Entity::delete_many()
                .filter(entity::account::Column::WorkspaceId.eq(workspace_id))
                .filter(entity::account::Column::Id.eq(id))
                .exec(&txn)
                .await?
                .rows_affected
        }
        SubjectKind::User => {
            entity::user::Entity::delete_many()
                .filter(entity::user::Column::WorkspaceId.eq(workspace_id))
                .filter(entity::user::Column::Id.eq(id))
                .exec(&txn)
                .await?
                .rows_affected
        }
    } > 0;
    if deleted {
        crate::tagging::delete::forget_subject(&txn, workspace_id, kind, id).await?;
        crate::segments::membership::forget_subject(&txn, workspace_id, kind, id).await?;
        if let Some(account) = account_of_user {
            let changed = [crate::segments::membership::Changed {
                kind: SubjectKind::Account,
                id: account,
                cause: None,
            }];
            crate::segments::membership::reevaluate(
                &txn,
                workspace_id,
                &changed,
                crate::segments::membership::Reason::Related,
                0,
                clock.now(),
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(deleted)
}

/// A change to an optional field: leave it, clear it, or set it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Clear,
    Set(T),
}

impl<T> Patch<T> {
    /// The field's new value, given its current one.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Keep => current,
            Patch::Clear => None,
            Patch::Set(value) => Some(value),
        }
    }

    /// Checks or transforms the value to set.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(value) => Patch::Set(f(value)?),
        })
    }
}

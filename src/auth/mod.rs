//! Workspaces, API keys and roles.
//!
//! Invariant: a secret is shown once, when created, and only its SHA-256 is
//! stored. Boundary: `graphql/` calls [`keys::authenticate`] for each request
//! and the CLI calls [`workspaces`] and [`keys`] directly.

pub mod keys;
pub mod role;
pub mod workspaces;

pub use role::Role;

use crate::error::{Code, ErrorCode};

/// Who is calling: the key that authenticated the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: i64,
    pub key_id: i64,
    pub key_name: String,
    pub role: Role,
}

/// Errors of the auth domain.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required: send the header `Authorization: Bearer <key>`")]
    MissingKey,
    #[error("the API key is not valid (unknown, malformed or revoked)")]
    InvalidKey,
    #[error("this needs the {needed} role; your key has {has}")]
    Forbidden { needed: Role, has: Role },
    #[error("workspace \"{0}\" does not exist")]
    UnknownWorkspace(String),
    #[error("workspace \"{0}\" already exists")]
    WorkspaceExists(String),
    #[error("no API key named \"{0}\" in this workspace")]
    UnknownKey(String),
    #[error("{0}")]
    BadInput(String),
    #[error("the system has no randomness to make a secret: {0}")]
    NoRandomness(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl ErrorCode for AuthError {
    fn code(&self) -> Code {
        match self {
            AuthError::MissingKey | AuthError::InvalidKey => Code::Unauthenticated,
            AuthError::Forbidden { .. } => Code::Forbidden,
            AuthError::UnknownWorkspace(_) | AuthError::UnknownKey(_) => Code::NotFound,
            AuthError::WorkspaceExists(_) => Code::Conflict,
            AuthError::BadInput(_) => Code::BadUserInput,
            AuthError::NoRandomness(_) | AuthError::Db(_) => Code::Internal,
        }
    }
}

impl Caller {
    /// Checks that the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<&Caller, AuthError> {
        if self.role >= needed {
            Ok(self)
        } else {
            Err(AuthError::Forbidden {
                needed,
                has: self.role,
            })
        }
    }
}

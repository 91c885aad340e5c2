//! Errors: every error a client can see carries one [`Code`].
//!
//! Each domain has its own `thiserror` enum implementing [`ErrorCode`]; they
//! all convert into [`ApiError`], which the GraphQL edge (`graphql::errors`)
//! turns into a GraphQL error with `extensions.code`. Database and IO errors fold into
//! `INTERNAL`: logged with their cause chain, never shown raw to clients.

use std::fmt::Display;

/// The message of every INTERNAL error a client sees; the details go to the server log.
pub const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

/// The error codes of the public API (`extensions.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    LimitExceeded,
    ScriptError,
    Internal,
}

impl Code {
    /// The code as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Conflict => "CONFLICT",
            Code::LimitExceeded => "LIMIT_EXCEEDED",
            Code::ScriptError => "SCRIPT_ERROR",
            Code::Internal => "INTERNAL",
        }
    }
}

/// Maps a domain error to its API code.
pub trait ErrorCode {
    fn code(&self) -> Code;
    /// Position in the client's text (filter or script), 1-based line and column.
    fn position(&self) -> Option<(u32, u32)> {
        None
    }
}

/// An error as a client sees it: a code, a message and maybe a position.
///
/// Deliberately not `Display`, so that it converts into a GraphQL error
/// only through the `From` impl that fills `extensions.code`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub position: Option<(u32, u32)>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            position: None,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(Code::BadUserInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// An internal failure: logged with its cause chain, shown as a generic message.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(Code::Internal, INTERNAL_MESSAGE)
    }
}

impl<E: ErrorCode + Display + std::error::Error + 'static> From<E> for ApiError {
    fn from(error: E) -> Self {
        let code = error.code();
        if code == Code::Internal {
            return ApiError::internal(&error);
        }
        ApiError {
            code,
            message: error.to_string(),
            position: error.position(),
        }
    }
}

/// A domain error that may hold a database failure: [`carry`] takes it into
/// another domain's error without turning that failure into a client's mistake.
pub trait DbCause: Sized {
    /// The database error this is (however deep), or the error itself.
    fn into_db(self) -> Result<sea_orm::DbErr, Self>;
}

/// The one conversion of an error from one domain into another's: a database
/// failure stays one (INTERNAL, logged, never shown); a domain rule keeps
/// its message in the receiving domain's variant `rule`.
pub fn carry<E: DbCause + Display, T: From<sea_orm::DbErr>>(
    error: E,
    rule: impl FnOnce(String) -> T,
) -> T {
    match error.into_db() {
        Ok(db) => T::from(db),
        Err(other) => rule(other.to_string()),
    }
}

impl ErrorCode for sea_orm::DbErr {
    fn code(&self) -> Code {
        Code::Internal
    }
}

/// Results of domain functions.
pub type ApiResult<T> = Result<T, ApiError>;

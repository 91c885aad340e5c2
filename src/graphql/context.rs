//! Per-request context: who is calling, and the checks resolvers make.

use async_graphql::Context;

use crate::auth::{AuthError, Caller, Role};
use crate::error::ApiError;

use super::loaders::Loaders;
use crate::app::AppState;

/// What the `Authorization` header of a request proved.
#[derive(Debug, Clone)]
pub enum RequestAuth {
    /// No header.
    Anonymous,
    /// A header whose key is unknown, malformed or revoked.
    Invalid,
    /// A valid key.
    Key(Caller),
}

/// The shared state.
pub fn state<'a>(ctx: &Context<'a>) -> Result<&'a AppState, ApiError> {
    ctx.data::<AppState>()
        .map_err(|_| ApiError::new(crate::error::Code::Internal, "server state missing"))
}

/// The request's DataLoaders.
pub fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders, ApiError> {
    ctx.data::<Loaders>()
        .map_err(|_| ApiError::new(crate::error::Code::Internal, "request loaders missing"))
}

/// The caller, who must hold at least `role`.
pub fn require<'a>(ctx: &Context<'a>, role: Role) -> Result<&'a Caller, ApiError> {
    match ctx.data::<RequestAuth>() {
        Ok(RequestAuth::Key(caller)) => Ok(caller.require(role)?),
        Ok(RequestAuth::Invalid) => Err(AuthError::InvalidKey.into()),
        Ok(RequestAuth::Anonymous) | Err(_) => Err(AuthError::MissingKey.into()),
    }
}

/// Tells the automation worker that new events may be waiting, and the
/// change feed that new changes are committed.
pub fn wake_worker(ctx: &Context<'_>) {
    if let Ok(state) = ctx.data::<AppState>() {
        state.committed();
    }
}

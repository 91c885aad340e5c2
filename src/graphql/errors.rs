//! Errors as GraphQL sees them: an [`ApiError`] becomes a GraphQL error
//! whose `extensions.code` is its [`Code`].

use crate::error::{ApiError, Code, INTERNAL_MESSAGE};

/// What resolvers return: `?` on a domain error goes through
/// `From<E: ErrorCode> for ApiError`, so it keeps its code (async-graphql's
/// own `Result` would take any `Display` error as a message without one).
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let message = if error.code == Code::Internal && error.message != INTERNAL_MESSAGE {
            // Made with `ApiError::new(Code::Internal, ..)`: log the detail, show none.
            tracing::error!(error = %error.message, "internal error");
            INTERNAL_MESSAGE.to_owned()
        } else {
            error.message
        };
        let mut gql = async_graphql::Error::new(message);
        let code = error.code;
        let position = error.position;
        gql = async_graphql::ErrorExtensions::extend_with(gql, |_, ext| {
            ext.set("code", code.as_str());
            if let Some((line, column)) = position {
                ext.set("line", line);
                ext.set("column", column);
            }
        });
        gql
    }
}

/// A request-level GraphQL error (one raised before any resolver runs, by
/// an extension) with its code.
pub fn server_error(code: Code, message: impl Into<String>) -> async_graphql::ServerError {
    let mut error = async_graphql::ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    error
}

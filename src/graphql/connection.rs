//! Relay connections: paging arguments, cursors and a lazy `totalCount`.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Object, OutputType};
use futures_util::future::BoxFuture;

use crate::error::{ApiError, ApiResult, Code};
use crate::subjects::page::{DEFAULT_PAGE, MAX_PAGE, Page, PageRequest};

use super::ids;

type CountFn = dyn Fn() -> BoxFuture<'static, ApiResult<u64>> + Send + Sync;

/// The `totalCount` field of every connection, counted only when asked for.
pub struct TotalCount(Arc<CountFn>);

impl TotalCount {
    pub fn new<F, Fut>(count: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ApiResult<u64>> + Send + 'static,
    {
        TotalCount(Arc::new(move || Box::pin(count())))
    }
}

#[Object]
impl TotalCount {
    /// How many items the whole list holds, across all pages.
    async fn total_count(&self) -> async_graphql::Result<i64> {
        Ok((self.0)().await? as i64)
    }
}

/// A page of nodes with a lazy total.
pub type CountedConnection<T> = Connection<String, T, TotalCount>;

/// Reads `first` and `after`: `first` defaults to 20 and must be within 1..=100.
pub fn page_request(first: Option<i32>, after: Option<String>) -> Result<PageRequest, ApiError> {
    let first = match first {
        None => DEFAULT_PAGE,
        Some(n) if n >= 1 && n as u64 <= MAX_PAGE => n as u64,
        Some(n) => {
            return Err(ApiError::new(
                Code::LimitExceeded,
                format!("`first` must be between 1 and {MAX_PAGE}, not {n}"),
            ));
        }
    };
    let after = after.as_deref().map(ids::decode_cursor).transpose()?;
    Ok(PageRequest { first, after })
}

/// The complexity of a page: each of its `first` items (20 when not given,
/// within 1..=100) costs what its selection costs, so nested pages multiply.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let items = first.map_or(DEFAULT_PAGE, |n| n.clamp(1, MAX_PAGE as i32) as u64);
    (items as usize).saturating_mul(child_complexity).max(1)
}

/// Builds a connection from a page of rows, their ids and their GraphQL form.
pub fn connection<R, T: OutputType>(
    page: Page<R>,
    request: PageRequest,
    id_of: impl Fn(&R) -> i64,
    node: impl Fn(R) -> T,
    total: TotalCount,
) -> CountedConnection<T> {
    let mut connection =
        Connection::with_additional_fields(request.after.is_some(), page.has_next, total);
    connection.edges = page
        .rows
        .into_iter()
        .map(|row| Edge::new(ids::cursor(id_of(&row)), node(row)))
        .collect();
    connection
}

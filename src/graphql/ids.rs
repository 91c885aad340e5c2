//! Global IDs as async-graphql's `ID`: the edge's side of [`crate::ids`],
//! which keeps them as plain text for the domains (scripts, exports).

use async_graphql::ID;

pub use crate::ids::{NodeKind, cursor, decode_cursor, decode_name_cursor, name_cursor};

use crate::error::ApiResult;

/// The global ID of a row.
pub fn encode(kind: NodeKind, id: i64) -> ID {
    ID(crate::ids::encode(kind, id))
}

/// Reads a global ID; anything malformed is BAD_USER_INPUT.
pub fn decode(id: &ID) -> ApiResult<(NodeKind, i64)> {
    crate::ids::decode(id.as_str())
}

/// Reads a global ID that must be of one kind.
pub fn decode_as(id: &ID, expected: NodeKind) -> ApiResult<i64> {
    crate::ids::decode_as(id.as_str(), expected)
}

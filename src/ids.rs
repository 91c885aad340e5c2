//! Opaque global IDs (`base64("User:42")`) and page cursors: the ids
//! clients see, in the API and in scripts (`s.id`), as plain text (the
//! GraphQL edge wraps them in its `ID` type: `graphql::ids`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

/// The types that have global IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Account,
    User,
    Tag,
    TagChange,
    Script,
    ScriptRun,
    AutomationEvent,
    Segment,
    SegmentChange,
    Webhook,
    WebhookDelivery,
}

impl NodeKind {
    fn name(self) -> &'static str {
        match self {
            NodeKind::Account => "Account",
            NodeKind::User => "User",
            NodeKind::Tag => "Tag",
            NodeKind::TagChange => "TagChange",
            NodeKind::Script => "Script",
            NodeKind::ScriptRun => "ScriptRun",
            NodeKind::AutomationEvent => "AutomationEvent",
            NodeKind::Segment => "Segment",
            NodeKind::SegmentChange => "SegmentChange",
            NodeKind::Webhook => "Webhook",
            NodeKind::WebhookDelivery => "WebhookDelivery",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "Account" => Some(NodeKind::Account),
            "User" => Some(NodeKind::User),
            "Tag" => Some(NodeKind::Tag),
            "TagChange" => Some(NodeKind::TagChange),
            "Script" => Some(NodeKind::Script),
            "ScriptRun" => Some(NodeKind::ScriptRun),
            "AutomationEvent" => Some(NodeKind::AutomationEvent),
            "Segment" => Some(NodeKind::Segment),
            "SegmentChange" => Some(NodeKind::SegmentChange),
            "Webhook" => Some(NodeKind::Webhook),
            "WebhookDelivery" => Some(NodeKind::WebhookDelivery),
            _ => None,
        }
    }
}

/// The global ID of a row.
pub fn encode(kind: NodeKind, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name()))
}

/// Reads a global ID; anything malformed is BAD_USER_INPUT.
pub fn decode(id: &str) -> Result<(NodeKind, i64), ApiError> {
    let bad = || ApiError::bad_input(format!("\"{}\" is not a valid id", shorten(id)));
    let bytes = URL_SAFE_NO_PAD.decode(id).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (kind, number) = text.split_once(':').ok_or_else(bad)?;
    let kind = NodeKind::from_name(kind).ok_or_else(bad)?;
    let number = number.parse::<i64>().map_err(|_| bad())?;
    Ok((kind, number))
}

/// Reads a global ID that must be of one kind.
pub fn decode_as(id: &str, expected: NodeKind) -> Result<i64, ApiError> {
    match decode(id)? {
        (kind, number) if kind == expected => Ok(number),
        (kind, _) => Err(ApiError::bad_input(format!(
            "\"{}\" is the id of a {}, not of a {}",
            shorten(id),
            kind.name(),
            expected.name()
        ))),
    }
}

/// The cursor after a row of a list ordered by id.
pub fn cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("cursor:{id}"))
}

/// Reads a cursor; anything malformed is BAD_USER_INPUT.
pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    let text = decode_prefixed(cursor, "cursor:")?;
    text.parse::<i64>().map_err(|_| bad_cursor(cursor))
}

/// The cursor after a row of a list ordered by name.
pub fn name_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("name:{name}"))
}

/// Reads a name cursor; anything malformed is BAD_USER_INPUT.
pub fn decode_name_cursor(cursor: &str) -> Result<String, ApiError> {
    decode_prefixed(cursor, "name:")
}

/// The text after `prefix` in a base64 cursor.
fn decode_prefixed(cursor: &str, prefix: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(prefix).map(str::to_owned))
        .ok_or_else(|| bad_cursor(cursor))
}

fn bad_cursor(cursor: &str) -> ApiError {
    ApiError::bad_input(format!(
        "\"{}\" is not a valid cursor: pass an endCursor or edge cursor this API returned",
        shorten(cursor)
    ))
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        text.chars().take(60).chain(['…']).collect()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_kind() {
        let id = encode(NodeKind::User, 42);
        assert_eq!(decode(&id).unwrap(), (NodeKind::User, 42));
        assert_eq!(decode_as(&id, NodeKind::User).unwrap(), 42);
        assert!(decode_as(&id, NodeKind::Account).is_err());
        for bad in ["", "!!", "VXNlcjp4", "Zm9vOjE"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(decode_cursor(&cursor(7)).unwrap(), 7);
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&encode(NodeKind::User, 1)).is_err());
        assert_eq!(
            decode_name_cursor(&name_cursor("a/b: c")).unwrap(),
            "a/b: c"
        );
        assert!(decode_name_cursor(&cursor(1)).is_err());
    }
}

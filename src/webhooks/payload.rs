//! The bodies webhooks receive: `{"type", "timestamp", "data"}`. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::automation::listener::ScriptFailure;
use crate::ids::{self, NodeKind};
use crate::subjects::SubjectKind;

/// The subject an event is about, as a receiver sees it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: i64,
    /// A user's email.
    pub email: Option<String>,
    /// An account's name, or a user's first and last name.
    pub name: Option<String>,
    pub external_id: Option<String>,
}

impl Subject {
    pub fn to_json(&self) -> Value {
        let kind = self.kind;
        let node = match kind {
            SubjectKind::Account => NodeKind::Account,
            SubjectKind::User => NodeKind::User,
        };
        json!({
            "kind": kind.as_str(),
            "id": ids::encode(node, self.id),
            "email": self.email,
            "name": self.name,
            "externalId": self.external_id,
        })
    }
}

/// What led to a change: another tag change or a segment entry/exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    TagChange(i64),
    SegmentChange(i64),
}

fn cause_json(cause: Option<Cause>) -> Value {
    match cause {
        Some(Cause::TagChange(id)) => {
            json!({"kind": "TAG_CHANGE", "id": ids::encode(NodeKind::TagChange, id)})
        }
        Some(Cause::SegmentChange(id)) => {
            json!({"kind": "SEGMENT_CHANGE", "id": ids::encode(NodeKind::SegmentChange, id)})
        }
        None => Value::Null,
    }
}

/// A whole message.
pub fn message(kind: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({
        "type": kind,
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "data": data,
    })
}

/// The data of `tag.added` / `tag.removed`.
pub struct TagEvent<'a> {
    pub tag: &'a str,
    pub subject: &'a Subject,
    /// MANUAL, BULK, IMPORT, TRIGGER or SCRIPT.
    pub source: &'a str,
    /// The API key, script or segment that made the change.
    pub actor: Option<&'a str>,
    pub cause: Option<Cause>,
    /// The `tag_changes` row.
    pub change_id: Option<i64>,
    pub depth: i32,
}

pub fn tag_data(event: &TagEvent<'_>) -> Value {
    json!({
        "tag": event.tag,
        "subject": event.subject.to_json(),
        "source": event.source,
        "actor": event.actor,
        "cause": cause_json(event.cause),
        "changeId": event.change_id.map(|id| ids::encode(NodeKind::TagChange, id)),
        "depth": event.depth,
    })
}

/// The data of `segment.entered` / `segment.exited`.
pub fn segment_data(
    segment_id: i64,
    segment_name: Option<&str>,
    subject: &Subject,
    change_id: Option<i64>,
    depth: i32,
) -> Value {
    json!({
        "segment": {"id": ids::encode(NodeKind::Segment, segment_id), "name": segment_name},
        "subject": subject.to_json(),
        // The `segment_changes` row (`segmentHistory` in the API).
        "changeId": change_id.map(|id| ids::encode(NodeKind::SegmentChange, id)),
        "depth": depth,
    })
}

/// The data of `script.failed`.
pub fn script_failed_data(failure: &ScriptFailure, subject: &Subject) -> Value {
    let event = super::EventType::from(failure.event_kind).wire_name();
    json!({
        "script": {
            "id": ids::encode(NodeKind::Script, failure.script_id),
            "name": failure.script_name,
            "version": failure.script_version,
        },
        "error": failure.error,
        "event": event,
        "tag": failure.tag,
        "segment": failure.segment,
        "subject": subject.to_json(),
    })
}

/// The data of `webhook.ping`.
pub fn ping_data(webhook_id: i64) -> Value {
    json!({
        "webhook": ids::encode(NodeKind::Webhook, webhook_id),
        "message": "a test message from tagsmith",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_added_body() {
        let subject = Subject {
            kind: SubjectKind::User,
            id: 7,
            email: Some("ada@example.com".into()),
            name: None,
            external_id: Some("u-7".into()),
        };
        let at = DateTime::parse_from_rfc3339("2026-12-06T10:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let data = tag_data(&TagEvent {
            tag: "VIP",
            subject: &subject,
            source: "SCRIPT",
            actor: Some("qualify"),
            cause: Some(Cause::TagChange(3)),
            change_id: Some(4),
            depth: 1,
        });
        let body = message("tag.added", at, data);
        expect_test::expect![[r#"{"data":{"actor":"qualify","cause":{"id":"VGFnQ2hhbmdlOjM","kind":"TAG_CHANGE"},"changeId":"VGFnQ2hhbmdlOjQ","depth":1,"source":"SCRIPT","subject":{"email":"ada@example.com","externalId":"u-7","id":"VXNlcjo3","kind":"USER","name":null},"tag":"VIP"},"timestamp":"2026-12-06T10:00:00.500000Z","type":"tag.added"}"#]]
            .assert_eq(&body.to_string());
    }
}

//! What a script sees: the event and its subject. Plain data types for the
//! server, and the Rhai `Subject` type whose methods record into the run's plan.

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FLOAT, INT, ImmutableString, Map};
use serde_json::Value;

use super::plan::Target;
use super::run::RunState;
use crate::tags::pattern::tag_matches;

/// Whether a subject is a user or an account (`s.kind` is `"USER"` or `"ACCOUNT"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    User,
    Account,
}

impl SubjectKind {
    /// The name scripts see in `s.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::User => "USER",
            SubjectKind::Account => "ACCOUNT",
        }
    }
}

/// The four hooks a script may define, each a function of one parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    TagAdded,
    TagRemoved,
    SegmentEntered,
    SegmentExited,
}

impl HookKind {
    /// Every hook, in declaration order.
    pub const ALL: [HookKind; 4] = [
        HookKind::TagAdded,
        HookKind::TagRemoved,
        HookKind::SegmentEntered,
        HookKind::SegmentExited,
    ];

    /// The script function implementing this hook (`on_tag_added`, ...).
    pub fn fn_name(self) -> &'static str {
        match self {
            HookKind::TagAdded => "on_tag_added",
            HookKind::TagRemoved => "on_tag_removed",
            HookKind::SegmentEntered => "on_segment_entered",
            HookKind::SegmentExited => "on_segment_exited",
        }
    }

    /// The hook a script function name implements, if any.
    pub fn from_fn_name(name: &str) -> Option<Self> {
        HookKind::ALL
            .into_iter()
            .find(|hook| hook.fn_name() == name)
    }
}

/// A user or account as it was when the event was handled.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectSnapshot {
    pub kind: SubjectKind,
    /// Opaque id, given back in [`PlannedAction`](super::PlannedAction)s.
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The account's name. For a user leave it `None`: `s.name` is then
    /// derived from the first and last names, or the email.
    pub name: Option<String>,
    pub attributes: serde_json::Map<String, Value>,
    pub tags: Vec<String>,
    /// A user's account; ignored for an account.
    pub account: Option<Box<SubjectSnapshot>>,
}

impl SubjectSnapshot {
    /// A subject with only a kind and an id; fill the other fields as needed.
    pub fn new(kind: SubjectKind, id: impl Into<String>) -> Self {
        SubjectSnapshot {
            kind,
            id: id.into(),
            email: None,
            first_name: None,
            last_name: None,
            name: None,
            attributes: serde_json::Map::new(),
            tags: Vec::new(),
            account: None,
        }
    }

    /// What scripts see in `s.name`: the name if set; for a user without
    /// one, "first last" trimmed, or the email when both are empty.
    pub fn display_name(&self) -> Option<String> {
        if self.name.is_some() || self.kind == SubjectKind::Account {
            return self.name.clone();
        }
        let first = self.first_name.as_deref().unwrap_or("").trim();
        let last = self.last_name.as_deref().unwrap_or("").trim();
        let full = format!("{first} {last}");
        let full = full.trim();
        if full.is_empty() {
            self.email.clone()
        } else {
            Some(full.to_owned())
        }
    }

    /// The account scripts see in `s.account`: a user's account, never an account's.
    pub(super) fn visible_account(&self) -> Option<&SubjectSnapshot> {
        match self.kind {
            SubjectKind::User => self.account.as_deref(),
            SubjectKind::Account => None,
        }
    }
}

/// One event handed to a hook: `event.tag`, `event.segment`, `event.source`,
/// `event.depth` and `event.subject` in the script.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub hook: HookKind,
    /// The tag added or removed (tag hooks).
    pub tag: Option<String>,
    /// The segment's name (segment hooks).
    pub segment: Option<String>,
    /// MANUAL, BULK, IMPORT, TRIGGER or SCRIPT.
    pub source: String,
    /// How many automation steps led to this event (0 for a direct change).
    pub depth: u32,
    pub subject: SubjectSnapshot,
}

/// Deepest JSON nesting converted for scripts; deeper values become `()`.
const MAX_JSON_DEPTH: usize = 64;
/// Deepest script value accepted by `set_attribute`.
const MAX_ATTRIBUTE_DEPTH: usize = 32;

/// The Rhai value of an event: an object map holding a `Subject`.
pub(super) fn event_value(event: &HookEvent, run: &Arc<RunState>) -> Dynamic {
    let mut map = Map::new();
    map.insert("tag".into(), optional_string(event.tag.as_deref()));
    map.insert("segment".into(), optional_string(event.segment.as_deref()));
    map.insert("source".into(), event.source.as_str().into());
    map.insert("depth".into(), Dynamic::from_int(INT::from(event.depth)));
    let subject = ScriptSubject {
        run: Arc::clone(run),
        target: Target::Subject,
    };
    map.insert("subject".into(), Dynamic::from(subject));
    Dynamic::from_map(map)
}

/// The `Subject` type scripts see. Every copy shares the run's state, so
/// changes planned through `event.subject`, a `let s` copy or `s.account`
/// all land in the same plan.
#[derive(Clone)]
pub(super) struct ScriptSubject {
    run: Arc<RunState>,
    target: Target,
}

impl ScriptSubject {
    fn snapshot(&self) -> &SubjectSnapshot {
        let subject = &self.run.subject;
        match self.target {
            Target::Subject => subject,
            // `Target::Account` is only built when the account exists.
            Target::Account => subject.visible_account().unwrap_or(subject),
        }
    }

    fn tags(&self) -> Array {
        self.run
            .current_tags(self.target, &self.snapshot().tags)
            .into_iter()
            .map(Dynamic::from)
            .collect()
    }

    fn has_tag(&self, pattern: &str) -> bool {
        self.run
            .any_current_tag(self.target, &self.snapshot().tags, |tag| {
                tag_matches(pattern, tag)
            })
    }

    fn attributes(&self) -> Dynamic {
        let mut attributes = self.snapshot().attributes.clone();
        for (key, value) in self.run.planned_attributes(self.target) {
            attributes.insert(key, value);
        }
        json_object_to_dynamic(&attributes, 0)
    }

    fn account(&self) -> Dynamic {
        match (self.target, self.run.subject.visible_account()) {
            (Target::Subject, Some(_)) => Dynamic::from(ScriptSubject {
                run: Arc::clone(&self.run),
                target: Target::Account,
            }),
            _ => Dynamic::UNIT,
        }
    }

    fn describe(&self) -> String {
        let snapshot = self.snapshot();
        match snapshot.display_name() {
            Some(name) => format!("{} {} ({name})", snapshot.kind.as_str(), snapshot.id),
            None => format!("{} {}", snapshot.kind.as_str(), snapshot.id),
        }
    }
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Registers the `Subject` type with its properties and methods.
pub(super) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptSubject>("Subject")
        .register_get("kind", |s: &mut ScriptSubject| -> ImmutableString {
            s.snapshot().kind.as_str().into()
        })
        .register_get("id", |s: &mut ScriptSubject| -> ImmutableString {
            s.snapshot().id.as_str().into()
        })
        .register_get("email", |s: &mut ScriptSubject| {
            optional_string(s.snapshot().email.as_deref())
        })
        .register_get("first_name", |s: &mut ScriptSubject| {
            optional_string(s.snapshot().first_name.as_deref())
        })
        .register_get("last_name", |s: &mut ScriptSubject| {
            optional_string(s.snapshot().last_name.as_deref())
        })
        .register_get("name", |s: &mut ScriptSubject| {
            optional_string(s.snapshot().display_name().as_deref())
        })
        .register_get("attributes", |s: &mut ScriptSubject| s.attributes())
        .register_get("tags", |s: &mut ScriptSubject| s.tags())
        .register_get("account", |s: &mut ScriptSubject| s.account())
        .register_fn("has_tag", |s: ScriptSubject, pattern: ImmutableString| {
            s.has_tag(&pattern)
        })
        .register_fn(
            "add_tag",
            |s: ScriptSubject, tag: ImmutableString| -> RhaiResult<()> {
                s.run.plan_tag(s.target, &tag, true).map_err(Into::into)
            },
        )
        .register_fn(
            "remove_tag",
            |s: ScriptSubject, tag: ImmutableString| -> RhaiResult<()> {
                s.run.plan_tag(s.target, &tag, false).map_err(Into::into)
            },
        )
        .register_fn(
            "set_attribute",
            |s: ScriptSubject, key: ImmutableString, value: Dynamic| -> RhaiResult<()> {
                let value = dynamic_to_json(value, 0)?;
                s.run
                    .plan_attribute(s.target, &key, value)
                    .map_err(Into::into)
            },
        )
        .register_fn("to_string", |s: &mut ScriptSubject| s.describe())
        .register_fn("to_debug", |s: &mut ScriptSubject| s.describe());
}

/// Text for `log(value)`: strings as they are, a subject described, other
/// values as Rhai prints them.
pub(super) fn log_text(value: &Dynamic) -> String {
    if let Some(subject) = value.read_lock::<ScriptSubject>() {
        return subject.describe();
    }
    value.to_string()
}

fn optional_string(value: Option<&str>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |s| ImmutableString::from(s).into())
}

fn json_object_to_dynamic(object: &serde_json::Map<String, Value>, depth: usize) -> Dynamic {
    let map: Map = object
        .iter()
        .map(|(key, value)| (key.as_str().into(), json_to_dynamic(value, depth + 1)))
        .collect();
    Dynamic::from_map(map)
}

/// Converts JSON to a Rhai value: null is `()`, numbers are integers when
/// they fit, floats otherwise.
pub(super) fn json_to_dynamic(value: &Value, depth: usize) -> Dynamic {
    if depth > MAX_JSON_DEPTH {
        return Dynamic::UNIT;
    }
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
        },
        Value::String(s) => ImmutableString::from(s.as_str()).into(),
        Value::Array(items) => Dynamic::from_array(
            items
                .iter()
                .map(|item| json_to_dynamic(item, depth + 1))
                .collect(),
        ),
        Value::Object(object) => json_object_to_dynamic(object, depth),
    }
}

/// Converts a script value to JSON for `set_attribute`: `()` is null,
/// characters are strings, BLOBs are arrays of bytes; functions, subjects
/// and other values cannot be stored.
pub(super) fn dynamic_to_json(value: Dynamic, depth: usize) -> RhaiResult<Value> {
    if depth > MAX_ATTRIBUTE_DEPTH {
        return Err(format!(
            "attribute value is nested more than {MAX_ATTRIBUTE_DEPTH} levels deep"
        )
        .into());
    }
    let value = value.flatten();
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return float_to_json(f);
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    let type_name = if value.is::<ScriptSubject>() {
        "Subject"
    } else {
        value.type_name()
    };
    if value.is_string() {
        return value
            .into_string()
            .map(Value::String)
            .map_err(|_| cannot_store(type_name));
    }
    if value.is_blob() {
        let blob = value.into_blob().map_err(|_| cannot_store(type_name))?;
        return Ok(Value::Array(blob.into_iter().map(Value::from).collect()));
    }
    if value.is_array() {
        let items = value.into_array().map_err(|_| cannot_store(type_name))?;
        return items
            .into_iter()
            .map(|item| dynamic_to_json(item, depth + 1))
            .collect::<RhaiResult<Vec<_>>>()
            .map(Value::Array);
    }
    if value.is_map() {
        let map = value
            .try_cast::<Map>()
            .ok_or_else(|| cannot_store(type_name))?;
        let mut object = serde_json::Map::new();
        for (key, item) in map {
            object.insert(key.to_string(), dynamic_to_json(item, depth + 1)?);
        }
        return Ok(Value::Object(object));
    }
    Err(cannot_store(type_name))
}

fn float_to_json(f: FLOAT) -> RhaiResult<Value> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("cannot store the number {f} as an attribute").into())
}

fn cannot_store(type_name: &str) -> Box<EvalAltResult> {
    format!("cannot store a value of type {type_name} as an attribute").into()
}

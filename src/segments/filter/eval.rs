//! The in-memory evaluator: does one subject match a filter? Used to detect
//! segment entry and exit for one subject; the SQL compiler gives the same
//! answers over many (the semantics are in the module docs of `filter`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use super::ast::{CompareOp, Expr, Field, FieldType, Predicate, Target, TextOp, Value};
use super::{Filter, MAX_SEGMENT_DEPTH, SegmentLookup, SubjectKind};
use crate::tags::pattern::tag_matches;

/// Everything a filter can look at for one account or user.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectData {
    pub kind: SubjectKind,
    /// Users only.
    pub email: Option<String>,
    /// Users only.
    pub first_name: Option<String>,
    /// Users only.
    pub last_name: Option<String>,
    /// Accounts only.
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Users only.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Accounts only.
    pub last_activity_at: Option<DateTime<Utc>>,
    pub attributes: Map<String, Json>,
    /// Tag names assigned to the subject.
    pub tags: Vec<String>,
    /// The subject's own tracked events: (name, at).
    pub events: Vec<(String, DateTime<Utc>)>,
    /// Users: their account, if any (read by `account.`).
    pub account: Option<Box<SubjectData>>,
    /// Accounts: their users (read by `any_user`). Within `any_user`, a
    /// user's account is this account; the users' own `account` is not read.
    pub users: Vec<SubjectData>,
}

impl SubjectData {
    /// A subject with no names, attributes, tags, events or relations.
    pub fn new(kind: SubjectKind, created_at: DateTime<Utc>) -> SubjectData {
        SubjectData {
            kind,
            email: None,
            first_name: None,
            last_name: None,
            name: None,
            external_id: None,
            created_at,
            last_seen_at: None,
            last_activity_at: None,
            attributes: Map::new(),
            tags: Vec::new(),
            events: Vec::new(),
            account: None,
            users: Vec::new(),
        }
    }

    fn text(&self, field: Field) -> Option<&str> {
        match field {
            Field::Email => self.email.as_deref(),
            Field::FirstName => self.first_name.as_deref(),
            Field::LastName => self.last_name.as_deref(),
            Field::Name => self.name.as_deref(),
            Field::ExternalId => self.external_id.as_deref(),
            Field::CreatedAt | Field::LastSeenAt | Field::LastActivityAt => None,
        }
    }

    fn date(&self, field: Field) -> Option<DateTime<Utc>> {
        match field {
            Field::CreatedAt => Some(self.created_at),
            Field::LastSeenAt => self.last_seen_at,
            Field::LastActivityAt => self.last_activity_at,
            _ => None,
        }
    }

    /// How many of the subject's events are named `name`, at or after `since`.
    fn events_named(&self, name: &str, since: DateTime<Utc>) -> usize {
        self.events
            .iter()
            .filter(|(event, time)| event == name && *time >= since)
            .count()
    }

    /// How many distinct UTC dates have any event of the subject, at or after `since`.
    fn active_days(&self, since: DateTime<Utc>) -> usize {
        let days: BTreeSet<_> = self
            .events
            .iter()
            .filter(|(_, time)| *time >= since)
            .map(|(_, time)| time.date_naive())
            .collect();
        days.len()
    }

    fn is_null(&self, field: Field) -> bool {
        match field.field_type() {
            FieldType::Text => self.text(field).is_none(),
            FieldType::Date => self.date(field).is_none(),
        }
    }
}

/// Whether `subject` matches `filter` at instant `now`. `segments` finds the
/// filter of a segment named by `in_segment`. A filter of the other kind than
/// the subject matches nothing.
pub fn evaluate(
    filter: &Filter,
    subject: &SubjectData,
    now: DateTime<Utc>,
    segments: SegmentLookup<'_>,
) -> bool {
    if filter.kind() != subject.kind {
        return false;
    }
    let mut evaluator = Evaluator {
        now,
        segments,
        evaluating: Vec::new(),
    };
    let at = At {
        subject,
        account: subject.account.as_deref(),
    };
    evaluator.expr(filter.root(), at)
}

/// One part of a filter evaluated for one subject: the part's canonical
/// text, its value, what decided it, and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub text: String,
    pub value: bool,
    pub detail: Option<String>,
    pub children: Vec<Trace>,
}

/// [`evaluate`], part by part: the returned tree's value is `evaluate`'s
/// answer, and each part says what decided it for this subject.
pub fn explain(
    filter: &Filter,
    subject: &SubjectData,
    now: DateTime<Utc>,
    segments: SegmentLookup<'_>,
) -> Trace {
    let mut evaluator = Evaluator {
        now,
        segments,
        evaluating: Vec::new(),
    };
    if filter.kind() != subject.kind {
        return Trace {
            text: filter.to_string(),
            value: false,
            detail: Some("the filter is for the other kind of subject".into()),
            children: Vec::new(),
        };
    }
    let at = At {
        subject,
        account: subject.account.as_deref(),
    };
    evaluator.trace(filter.root(), at)
}

/// A subject and, for a user, the account that `account.` reads.
#[derive(Clone, Copy)]
struct At<'a> {
    subject: &'a SubjectData,
    account: Option<&'a SubjectData>,
}

struct Evaluator<'a> {
    now: DateTime<Utc>,
    segments: SegmentLookup<'a>,
    /// Segments being evaluated, innermost last: guards against cycles.
    evaluating: Vec<String>,
}

impl Evaluator<'_> {
    fn expr(&mut self, expr: &Expr, at: At<'_>) -> bool {
        match expr {
            Expr::Or(operands) => operands.iter().any(|operand| self.expr(operand, at)),
            Expr::And(operands) => operands.iter().all(|operand| self.expr(operand, at)),
            Expr::Not(operand) => !self.expr(operand, at),
            Expr::Predicate(predicate) => self.predicate(predicate, at),
        }
    }

    fn predicate(&mut self, predicate: &Predicate, at: At<'_>) -> bool {
        let subject = at.subject;
        match predicate {
            Predicate::Tagged(pattern) => has_tag(subject, pattern),
            Predicate::TaggedAny(patterns) => patterns.iter().any(|p| has_tag(subject, p)),
            Predicate::TaggedAll(patterns) => patterns.iter().all(|p| has_tag(subject, p)),
            Predicate::Compare { target, op, value } => self.compare(subject, target, *op, value),
            Predicate::IsNull { target, negated } => {
                let null = match target {
                    Target::Field(field) => subject.is_null(*field),
                    Target::Attr(name) => {
                        matches!(subject.attributes.get(name), None | Some(Json::Null))
                    }
                };
                null != *negated
            }
            Predicate::Text { target, op, needle } => {
                let text = match target {
                    Target::Field(field) => subject.text(*field),
                    Target::Attr(name) => subject.attributes.get(name).and_then(Json::as_str),
                };
                text.is_some_and(|text| text_matches(text, *op, needle))
            }
            Predicate::Events {
                name,
                within,
                op,
                count,
            } => {
                let found = subject.events_named(name, within.before(self.now));
                compare_count(found, *op, *count)
            }
            Predicate::ActiveDays { within, op, count } => {
                let days = subject.active_days(within.before(self.now));
                compare_count(days, *op, *count)
            }
            Predicate::InSegment(name) => self.in_segment(name, at),
            Predicate::Account(inner) => at.account.is_some_and(|account| {
                let at = At {
                    subject: account,
                    account: None,
                };
                self.predicate(inner, at)
            }),
            Predicate::AnyUser(inner) => subject.users.iter().any(|user| {
                let at = At {
                    subject: user,
                    account: Some(subject),
                };
                self.expr(inner, at)
            }),
        }
    }

    fn compare(
        &self,
        subject: &SubjectData,
        target: &Target,
        op: CompareOp,
        value: &Value,
    ) -> bool {
        match target {
            Target::Field(field) => match field.field_type() {
                FieldType::Text => match (subject.text(*field), value) {
                    (Some(text), Value::String(literal)) => {
                        op.holds(text.as_bytes().cmp(literal.as_bytes()))
                    }
                    _ => false,
                },
                FieldType::Date => match (subject.date(*field), value.instant(self.now)) {
                    (Some(date), Some(instant)) => op.holds(date.cmp(&instant)),
                    _ => false,
                },
            },
            Target::Attr(name) => match (subject.attributes.get(name), value) {
                (Some(Json::Number(number)), Value::Number(literal)) => number
                    .as_f64()
                    .and_then(|number| number.partial_cmp(literal))
                    .is_some_and(|ordering| op.holds(ordering)),
                (Some(Json::String(text)), Value::String(literal)) => {
                    op.holds(text.as_bytes().cmp(literal.as_bytes()))
                }
                (Some(Json::Bool(flag)), Value::Bool(literal)) if op.is_equality() => {
                    op.holds(flag.cmp(literal))
                }
                (Some(Json::String(text)), Value::Now | Value::NowMinus(_) | Value::NowPlus(_)) => {
                    match (super::ast::attr_date(text), value.instant(self.now)) {
                        (Some(date), Some(instant)) => op.holds(date.cmp(&instant)),
                        _ => false,
                    }
                }
                _ => false,
            },
        }
    }

    fn in_segment(&mut self, name: &str, at: At<'_>) -> bool {
        if self.evaluating.len() >= MAX_SEGMENT_DEPTH
            || self.evaluating.iter().any(|seen| seen == name)
        {
            return false;
        }
        let Some(filter) = (self.segments)(name) else {
            return false;
        };
        if filter.kind() != at.subject.kind {
            return false;
        }
        self.evaluating.push(name.to_string());
        let matched = self.expr(filter.root(), at);
        self.evaluating.pop();
        matched
    }
}

impl Evaluator<'_> {
    fn trace(&mut self, expr: &Expr, at: At<'_>) -> Trace {
        let (value, children) = match expr {
            Expr::Or(operands) | Expr::And(operands) => {
                let children: Vec<Trace> = operands.iter().map(|o| self.trace(o, at)).collect();
                let value = if matches!(expr, Expr::Or(_)) {
                    children.iter().any(|c| c.value)
                } else {
                    children.iter().all(|c| c.value)
                };
                (value, children)
            }
            Expr::Not(operand) => {
                let child = self.trace(operand, at);
                (!child.value, vec![child])
            }
            Expr::Predicate(predicate) => return self.trace_predicate(predicate, at),
        };
        Trace {
            text: expr.to_string(),
            value,
            detail: None,
            children,
        }
    }

    fn trace_predicate(&mut self, predicate: &Predicate, at: At<'_>) -> Trace {
        let value = self.predicate(predicate, at);
        let subject = at.subject;
        let mut children = Vec::new();
        let detail = match predicate {
            Predicate::Tagged(pattern) => Some(tags_detail(subject, std::slice::from_ref(pattern))),
            Predicate::TaggedAny(patterns) | Predicate::TaggedAll(patterns) => {
                Some(tags_detail(subject, patterns))
            }
            Predicate::Compare { target, .. }
            | Predicate::IsNull { target, .. }
            | Predicate::Text { target, .. } => Some(target_detail(subject, target)),
            Predicate::Events { name, within, .. } => {
                let found = subject.events_named(name, within.before(self.now));
                Some(format!("{found} {name:?} events in the last {within}"))
            }
            Predicate::ActiveDays { within, .. } => {
                let days = subject.active_days(within.before(self.now));
                Some(format!("{days} active days in the last {within}"))
            }
            Predicate::InSegment(name) => match (self.segments)(name) {
                Some(filter) if filter.kind() == subject.kind => {
                    if !self.evaluating.iter().any(|seen| seen == name)
                        && self.evaluating.len() < MAX_SEGMENT_DEPTH
                    {
                        self.evaluating.push(name.to_string());
                        children.push(self.trace(filter.root(), at));
                        self.evaluating.pop();
                    }
                    Some(format!("the filter of segment {name:?}"))
                }
                Some(_) => Some(format!("segment {name:?} is of the other kind")),
                None => Some(format!("no segment named {name:?}")),
            },
            Predicate::Account(inner) => match at.account {
                Some(account) => {
                    let inner_at = At {
                        subject: account,
                        account: None,
                    };
                    children.push(self.trace_predicate(inner, inner_at));
                    Some(format!("account {}", subject_label(account)))
                }
                None => Some("the user has no account".into()),
            },
            Predicate::AnyUser(inner) => {
                let at_user = |user| At {
                    subject: user,
                    account: Some(subject),
                };
                let matching: Vec<&SubjectData> = subject
                    .users
                    .iter()
                    .filter(|user| self.expr(inner, at_user(user)))
                    .collect();
                // The first matching user's trace, else the first user's.
                if let Some(user) = matching.first().copied().or(subject.users.first()) {
                    children.push(self.trace(inner, at_user(user)));
                }
                let matching: Vec<String> = matching.into_iter().map(subject_label).collect();
                Some(format!(
                    "{} of {} users match{}",
                    matching.len(),
                    subject.users.len(),
                    if matching.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", shown_list(&matching))
                    }
                ))
            }
        };
        Trace {
            text: predicate.to_string(),
            value,
            detail,
            children,
        }
    }
}

/// How many names a detail lists before "and N more".
const LISTED: usize = 5;

fn shown_list(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LISTED {
        text.push_str(&format!(" and {} more", names.len() - LISTED));
    }
    text
}

fn tags_detail(subject: &SubjectData, patterns: &[String]) -> String {
    let matching: Vec<String> = subject
        .tags
        .iter()
        .filter(|tag| patterns.iter().any(|p| tag_matches(p, tag)))
        .map(|tag| format!("{tag:?}"))
        .collect();
    if matching.is_empty() {
        "no tag of the subject matches".into()
    } else {
        format!("matching tags: {}", shown_list(&matching))
    }
}

fn target_detail(subject: &SubjectData, target: &Target) -> String {
    match target {
        Target::Field(field) => {
            let value = match field.field_type() {
                FieldType::Text => subject.text(*field).map(|t| format!("{t:?}")),
                FieldType::Date => subject.date(*field).map(|d| d.to_rfc3339()),
            };
            match value {
                Some(value) => format!("{} is {value}", field.name()),
                None => format!("{} is null", field.name()),
            }
        }
        Target::Attr(name) => match subject.attributes.get(name) {
            Some(value) => format!("attr.{name} is {value}"),
            None => format!("attr.{name} is absent"),
        },
    }
}

fn subject_label(subject: &SubjectData) -> String {
    subject
        .email
        .clone()
        .or_else(|| subject.name.clone())
        .or_else(|| subject.external_id.clone())
        .unwrap_or_else(|| "(unnamed)".into())
}

fn has_tag(subject: &SubjectData, pattern: &str) -> bool {
    subject.tags.iter().any(|tag| tag_matches(pattern, tag))
}

/// `contains` / `starts_with`, case-insensitive through `str::to_lowercase`.
fn text_matches(text: &str, op: TextOp, needle: &str) -> bool {
    let text = text.to_lowercase();
    let needle = needle.to_lowercase();
    match op {
        TextOp::Contains => text.contains(&needle),
        TextOp::StartsWith => text.starts_with(&needle),
    }
}

fn compare_count(found: usize, op: CompareOp, count: u32) -> bool {
    let found = u64::try_from(found).unwrap_or(u64::MAX);
    op.holds(found.cmp(&u64::from(count)))
}

#[cfg(test)]
mod tests;

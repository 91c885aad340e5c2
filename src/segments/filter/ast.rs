//! The syntax tree of a filter, as the parser builds it and the printer, the
//! evaluator and the SQL compiler walk it.
//!
//! The tree keeps what was written (a date stays the string it was written as,
//! a duration stays `30d`), so that printing gives the text back; the helpers
//! here ([`Value::instant`], [`Duration::seconds`], [`parse_date`]) give the
//! meaning. Parentheses are not nodes: they only shape the tree.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use super::SubjectKind;

/// A boolean expression over one subject.
///
/// Invariant kept by the parser: `Or` and `And` hold at least two operands.
/// An operand of `Or` may itself be an `Or` (written `(a or b) or c`); the
/// printer keeps such grouping.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// True when any operand is.
    Or(Vec<Expr>),
    /// True when every operand is.
    And(Vec<Expr>),
    /// True when the operand is false (two-valued: no unknowns).
    Not(Box<Expr>),
    /// A condition on the subject.
    Predicate(Predicate),
}

/// One condition on a subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `tagged("p")`: some tag of the subject matches the pattern.
    Tagged(String),
    /// `tagged_any("p", "q")`: some pattern matches some tag.
    TaggedAny(Vec<String>),
    /// `tagged_all("p", "q")`: every pattern matches some tag.
    TaggedAll(Vec<String>),
    /// `email = "a@b.c"`, `attr.seats >= 10`, `last_seen_at < now - 30d`.
    Compare {
        target: Target,
        op: CompareOp,
        value: Value,
    },
    /// `email is null` (`negated: false`) or `email is not null` (`negated: true`).
    IsNull { target: Target, negated: bool },
    /// `email contains "acme"`, `first_name starts_with "jo"` (case-insensitive).
    Text {
        target: Target,
        op: TextOp,
        needle: String,
    },
    /// `events("login", 7d) >= 3`: events of that name in the last `within`.
    Events {
        name: String,
        within: Duration,
        op: CompareOp,
        count: u32,
    },
    /// `active_days(30d) >= 5`: distinct UTC days with any event in the last `within`.
    ActiveDays {
        within: Duration,
        op: CompareOp,
        count: u32,
    },
    /// `in_segment("Champions")`: the named segment's filter holds for the subject.
    InSegment(String),
    /// `account.PREDICATE` (user filters): the predicate holds for the user's account.
    Account(Box<Predicate>),
    /// `any_user(EXPR)` (account filters): the expression holds for some user of the account.
    AnyUser(Box<Expr>),
}

/// What a comparison, null test or text test looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A built-in column.
    Field(Field),
    /// `attr.NAME`: the custom attribute `NAME` (a key of the attributes JSON object).
    Attr(String),
}

/// The built-in fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Email,
    FirstName,
    LastName,
    Name,
    ExternalId,
    CreatedAt,
    LastSeenAt,
    LastActivityAt,
}

/// Whether a field holds text or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Date,
}

impl Field {
    /// Every field, in the order they are listed in messages.
    pub const ALL: [Field; 8] = [
        Field::Email,
        Field::FirstName,
        Field::LastName,
        Field::Name,
        Field::ExternalId,
        Field::CreatedAt,
        Field::LastSeenAt,
        Field::LastActivityAt,
    ];

    /// The name as written in filters.
    pub fn name(self) -> &'static str {
        match self {
            Field::Email => "email",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Name => "name",
            Field::ExternalId => "external_id",
            Field::CreatedAt => "created_at",
            Field::LastSeenAt => "last_seen_at",
            Field::LastActivityAt => "last_activity_at",
        }
    }

    /// The field called `name` (case-insensitive), whatever the subject kind.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(name))
    }

    pub fn field_type(self) -> FieldType {
        match self {
            Field::CreatedAt | Field::LastSeenAt | Field::LastActivityAt => FieldType::Date,
            _ => FieldType::Text,
        }
    }

    /// Whether subjects of this kind have the field.
    pub fn applies_to(self, kind: SubjectKind) -> bool {
        match self {
            Field::Email | Field::FirstName | Field::LastName | Field::LastSeenAt => {
                kind == SubjectKind::User
            }
            Field::Name | Field::LastActivityAt => kind == SubjectKind::Account,
            Field::ExternalId | Field::CreatedAt => true,
        }
    }

    /// The fields of a kind, in message order.
    pub fn for_kind(kind: SubjectKind) -> impl Iterator<Item = Field> {
        Field::ALL
            .into_iter()
            .filter(move |field| field.applies_to(kind))
    }
}

/// `=`, `!=`, `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub const ALL: [CompareOp; 6] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    /// Whether `ordering` (of left side against right side) satisfies the operator.
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match self {
            CompareOp::Eq => ordering == Equal,
            CompareOp::Ne => ordering != Equal,
            CompareOp::Lt => ordering == Less,
            CompareOp::Le => ordering != Greater,
            CompareOp::Gt => ordering == Greater,
            CompareOp::Ge => ordering != Less,
        }
    }

    /// `=` and `!=`, the only operators that apply to `true`/`false`.
    pub fn is_equality(self) -> bool {
        matches!(self, CompareOp::Eq | CompareOp::Ne)
    }
}

/// `contains` or `starts_with`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextOp {
    Contains,
    StartsWith,
}

impl TextOp {
    pub fn keyword(self) -> &'static str {
        match self {
            TextOp::Contains => "contains",
            TextOp::StartsWith => "starts_with",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string; for date fields it holds an RFC 3339 date or date-time (see [`parse_date`]).
    String(String),
    /// A finite number.
    Number(f64),
    Bool(bool),
    /// The evaluation instant.
    Now,
    /// `now - 30d`.
    NowMinus(Duration),
    /// `now + 30d`.
    NowPlus(Duration),
}

impl Value {
    /// The instant this value denotes when compared with a date field:
    /// `now`, `now ± DURATION`, or a string read by [`parse_date`]. `None` for
    /// numbers, booleans and strings that are not dates.
    pub fn instant(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Value::Now => Some(now),
            Value::NowMinus(duration) => Some(duration.before(now)),
            Value::NowPlus(duration) => Some(duration.after(now)),
            Value::String(text) => parse_date(text),
            Value::Number(_) | Value::Bool(_) => None,
        }
    }
}

/// A span of time written `INT` + unit, such as `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Duration {
    pub amount: u32,
    pub unit: DurationUnit,
}

/// `m` (minutes), `h` (hours), `d` (days, of 24 hours), `w` (weeks, of 7 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    Minutes,
    Hours,
    Days,
    Weeks,
}

impl DurationUnit {
    pub const ALL: [DurationUnit; 4] = [
        DurationUnit::Minutes,
        DurationUnit::Hours,
        DurationUnit::Days,
        DurationUnit::Weeks,
    ];

    pub fn suffix(self) -> char {
        match self {
            DurationUnit::Minutes => 'm',
            DurationUnit::Hours => 'h',
            DurationUnit::Days => 'd',
            DurationUnit::Weeks => 'w',
        }
    }

    /// The unit written `suffix` (case-insensitive).
    pub fn from_suffix(suffix: &str) -> Option<DurationUnit> {
        let mut chars = suffix.chars();
        let (Some(letter), None) = (chars.next(), chars.next()) else {
            return None;
        };
        DurationUnit::ALL
            .into_iter()
            .find(|unit| unit.suffix() == letter.to_ascii_lowercase())
    }

    pub fn seconds(self) -> i64 {
        match self {
            DurationUnit::Minutes => 60,
            DurationUnit::Hours => 3_600,
            DurationUnit::Days => 86_400,
            DurationUnit::Weeks => 604_800,
        }
    }
}

impl Duration {
    /// The longest duration the language accepts: 36500 days (about 100 years).
    pub const MAX_SECONDS: i64 = 36_500 * 86_400;

    /// Length in seconds (days are 86400 s: UTC has no daylight saving).
    pub fn seconds(self) -> i64 {
        i64::from(self.amount) * self.unit.seconds()
    }

    pub fn to_time_delta(self) -> TimeDelta {
        TimeDelta::try_seconds(self.seconds()).unwrap_or(TimeDelta::MAX)
    }

    /// `now - self`, saturating at the earliest representable instant.
    pub fn before(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.to_time_delta())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// `now + self`, saturating at the latest representable instant.
    pub fn after(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.to_time_delta())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// Reads a date string as filters accept it: an RFC 3339 date-time
/// (`2024-05-01T09:30:00Z`, `2024-05-01T09:30:00+02:00`) or a bare date
/// (`2024-05-01`, meaning midnight UTC).
/// The date an attribute holds, when it is a JSON string `"YYYY-MM-DD"`
/// naming a real calendar date of the years 0001 to 9999: midnight UTC of
/// that day. Attributes compared with `now ± DURATION` are read this way.
pub fn attr_date(text: &str) -> Option<DateTime<Utc>> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped || text.starts_with("0000") {
        return None;
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.with_timezone(&Utc));
    }
    if text.len() == 10 {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_dates() {
        let show = |text: &str| attr_date(text).map(|instant| instant.to_rfc3339());
        assert_eq!(
            show("2027-02-24").as_deref(),
            Some("2027-02-24T00:00:00+00:00")
        );
        for not_a_date in [
            "2024-02-30",
            "2024-13-01",
            "0000-01-01",
            "2024-5-01",
            "2024-05-01T00:00:00Z",
            " 2024-05-01",
            "２０２４-05-01",
        ] {
            assert_eq!(show(not_a_date), None, "{not_a_date}");
        }
        assert!(show("2024-02-29").is_some(), "a leap day");
    }

    #[test]
    fn dates() {
        let show = |text: &str| parse_date(text).map(|instant| instant.to_rfc3339());
        assert_eq!(
            show("2024-05-01").as_deref(),
            Some("2024-05-01T00:00:00+00:00")
        );
        assert_eq!(
            show("2024-05-01T09:30:00+02:00").as_deref(),
            Some("2024-05-01T07:30:00+00:00")
        );
        assert_eq!(show("2024-13-01"), None);
        assert_eq!(show("2024-5-1"), None);
        assert_eq!(show("yesterday"), None);
    }

    #[test]
    fn durations_saturate() {
        let week = Duration {
            amount: 1,
            unit: DurationUnit::Weeks,
        };
        assert_eq!(week.seconds(), 604_800);
        assert_eq!(
            week.before(DateTime::<Utc>::MIN_UTC),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            week.after(DateTime::<Utc>::MAX_UTC),
            DateTime::<Utc>::MAX_UTC
        );
    }
}

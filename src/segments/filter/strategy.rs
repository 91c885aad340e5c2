//! proptest strategies for filters that type-check, shared with the SQL
//! compiler's tests (`crate::segments::filter::strategy`). Segment names are
//! drawn from [`SEGMENT_NAMES`]; nothing here resolves them.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::ast::{
    CompareOp, Duration, DurationUnit, Expr, Field, FieldType, Predicate, Target, TextOp, Value,
};
use super::{Filter, SubjectKind};

/// Names used by generated `in_segment` predicates.
pub(crate) const SEGMENT_NAMES: [&str; 3] = ["Champions", "At risk", "Trial \"2024\""];

/// A filter on `kind` that passes the type check.
pub(crate) fn filter(kind: SubjectKind) -> impl Strategy<Value = Filter> {
    expr(kind).prop_map(move |root| Filter { kind, root })
}

/// An expression on `kind` that passes the type check.
pub(crate) fn expr(kind: SubjectKind) -> BoxedStrategy<Expr> {
    let leaf = match kind {
        SubjectKind::User => prop_oneof![
            4 => predicate(SubjectKind::User),
            1 => predicate(SubjectKind::Account).prop_map(|p| Predicate::Account(Box::new(p))),
        ]
        .boxed(),
        SubjectKind::Account => prop_oneof![
            4 => predicate(SubjectKind::Account),
            1 => shallow_user_expr().prop_map(|e| Predicate::AnyUser(Box::new(e))),
        ]
        .boxed(),
    };
    combine(leaf.prop_map(Expr::Predicate).boxed(), 3)
}

fn shallow_user_expr() -> BoxedStrategy<Expr> {
    let leaf = prop_oneof![
        4 => predicate(SubjectKind::User),
        1 => predicate(SubjectKind::Account).prop_map(|p| Predicate::Account(Box::new(p))),
    ];
    combine(leaf.prop_map(Expr::Predicate).boxed(), 2)
}

fn combine(leaf: BoxedStrategy<Expr>, depth: u32) -> BoxedStrategy<Expr> {
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 2..4).prop_map(Expr::Or),
            vec(inner.clone(), 2..4).prop_map(Expr::And),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
    .boxed()
}

/// A predicate on `kind` without `account.` or `any_user`.
pub(crate) fn predicate(kind: SubjectKind) -> BoxedStrategy<Predicate> {
    let fields: Vec<Field> = Field::for_kind(kind).collect();
    let text_fields: Vec<Field> = fields
        .iter()
        .copied()
        .filter(|f| f.field_type() == FieldType::Text)
        .collect();
    let text_target = prop_oneof![
        select(text_fields).prop_map(Target::Field),
        attr_name().prop_map(Target::Attr),
    ];
    let any_target = prop_oneof![
        select(fields.clone()).prop_map(Target::Field),
        attr_name().prop_map(Target::Attr),
    ];
    prop_oneof![
        1 => text().prop_map(Predicate::Tagged),
        1 => vec(text(), 1..4).prop_map(Predicate::TaggedAny),
        1 => vec(text(), 1..4).prop_map(Predicate::TaggedAll),
        3 => (select(fields), compare_op()).prop_flat_map(|(field, op)| {
            field_value(field).prop_map(move |value| Predicate::Compare {
                target: Target::Field(field),
                op,
                value,
            })
        }),
        2 => (attr_name(), compare_op(), attr_value()).prop_map(|(name, op, value)| {
            let op = match value {
                Value::Bool(_) if !op.is_equality() => CompareOp::Ne,
                _ => op,
            };
            Predicate::Compare { target: Target::Attr(name), op, value }
        }),
        1 => (any_target, any::<bool>())
            .prop_map(|(target, negated)| Predicate::IsNull { target, negated }),
        1 => (text_target, select(vec![TextOp::Contains, TextOp::StartsWith]), text())
            .prop_map(|(target, op, needle)| Predicate::Text { target, op, needle }),
        1 => (text(), duration(), compare_op(), any::<u32>()).prop_map(|(name, within, op, count)| {
            Predicate::Events { name, within, op, count }
        }),
        1 => (duration(), compare_op(), any::<u32>())
            .prop_map(|(within, op, count)| Predicate::ActiveDays { within, op, count }),
        1 => select(SEGMENT_NAMES.to_vec()).prop_map(|name| Predicate::InSegment(name.to_string())),
    ]
    .boxed()
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    select(CompareOp::ALL.to_vec())
}

/// Short strings with the characters that need escaping and some non-ASCII.
pub(crate) fn text() -> impl Strategy<Value = String> {
    let chars = vec![
        'a', 'B', 'z', '0', ' ', '/', '*', ':', '"', '\\', '\n', '\t', '\r', 'é', '日', '%', '_',
    ];
    vec(select(chars), 0..8).prop_map(|chars| chars.into_iter().collect())
}

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec!["plan", "seats", "and", "is_active", "_x1", "NotNull"]).prop_map(String::from),
        text(),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    (0u32..=1000, select(DurationUnit::ALL.to_vec()))
        .prop_map(|(amount, unit)| Duration { amount, unit })
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i32..1000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |n| n.is_finite()),
    ]
}

fn date() -> impl Strategy<Value = String> {
    (
        1970u32..2100,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0usize..3,
    )
        .prop_map(|(year, month, day, hour, minute, form)| match form {
            0 => format!("{year:04}-{month:02}-{day:02}"),
            1 => format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:07Z"),
            _ => format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:00.5+02:00"),
        })
}

fn field_value(field: Field) -> BoxedStrategy<Value> {
    match field.field_type() {
        FieldType::Text => text().prop_map(Value::String).boxed(),
        FieldType::Date => prop_oneof![
            Just(Value::Now),
            duration().prop_map(Value::NowMinus),
            duration().prop_map(Value::NowPlus),
            date().prop_map(Value::String),
        ]
        .boxed(),
    }
}

fn attr_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => text().prop_map(Value::String),
        3 => number().prop_map(Value::Number),
        3 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Now),
        1 => duration().prop_map(Value::NowMinus),
        1 => duration().prop_map(Value::NowPlus),
    ]
}

/// Random sequences of filter tokens and near-tokens, for robustness tests.
pub(crate) fn token_soup() -> impl Strategy<Value = String> {
    let pieces = vec![
        "tagged(\"a/*\")",
        "tagged_any",
        "tagged_all",
        "(",
        ")",
        ",",
        ".",
        "and",
        "OR",
        "not",
        "email",
        "name",
        "created_at",
        "last_seen_at",
        "attr",
        "attr.x",
        "account",
        "any_user",
        "events",
        "active_days",
        "in_segment",
        "is",
        "null",
        "contains",
        "starts_with",
        "=",
        "!=",
        "<",
        ">=",
        "now",
        "-",
        "+",
        "30d",
        "5",
        "1.5",
        "-2",
        "1e400",
        "\"s\"",
        "\"2024-05-01\"",
        "\"unterminated",
        "\\",
        "true",
        "false",
        "7x",
        "\n",
        "é",
    ];
    vec(select(pieces), 0..16).prop_map(|pieces| pieces.join(" "))
}

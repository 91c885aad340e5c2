//! The canonical printer (`Display`): lowercase keywords, single spaces,
//! strings re-escaped, durations as `30d`, numbers in their shortest form, and
//! only the parentheses the tree needs. For every tree the parser can build,
//! parsing the printed text gives the same tree back.
//!
//! Parentheses: an `or` inside an `and` needs them (precedence); an `or`
//! inside an `or`, or an `and` inside an `and`, gets them too, because the
//! tree keeps that grouping; `not` takes them around an `and` or an `or`.

use std::fmt::{self, Display, Formatter, Write};

use super::Filter;
use super::ast::{CompareOp, Duration, Expr, Field, Predicate, Target, Value};

impl Display for Filter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.root().fmt(f)
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(operands) => join(f, operands, " or ", |operand| {
                matches!(operand, Expr::Or(_))
            }),
            Expr::And(operands) => join(f, operands, " and ", |operand| {
                matches!(operand, Expr::Or(_) | Expr::And(_))
            }),
            Expr::Not(operand) => {
                f.write_str("not ")?;
                grouped(f, operand, matches!(**operand, Expr::Or(_) | Expr::And(_)))
            }
            Expr::Predicate(predicate) => predicate.fmt(f),
        }
    }
}

fn join(
    f: &mut Formatter<'_>,
    operands: &[Expr],
    separator: &str,
    needs_parens: impl Fn(&Expr) -> bool,
) -> fmt::Result {
    for (index, operand) in operands.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        grouped(f, operand, needs_parens(operand))?;
    }
    Ok(())
}

fn grouped(f: &mut Formatter<'_>, expr: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({expr})")
    } else {
        expr.fmt(f)
    }
}

impl Display for Predicate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Tagged(pattern) => write!(f, "tagged({})", Quoted(pattern)),
            Predicate::TaggedAny(patterns) => write!(f, "tagged_any({})", List(patterns)),
            Predicate::TaggedAll(patterns) => write!(f, "tagged_all({})", List(patterns)),
            Predicate::Compare { target, op, value } => write!(f, "{target} {op} {value}"),
            Predicate::IsNull { target, negated } => {
                let not = if *negated { "not " } else { "" };
                write!(f, "{target} is {not}null")
            }
            Predicate::Text { target, op, needle } => {
                write!(f, "{target} {} {}", op.keyword(), Quoted(needle))
            }
            Predicate::Events {
                name,
                within,
                op,
                count,
            } => write!(f, "events({}, {within}) {op} {count}", Quoted(name)),
            Predicate::ActiveDays { within, op, count } => {
                write!(f, "active_days({within}) {op} {count}")
            }
            Predicate::InSegment(name) => write!(f, "in_segment({})", Quoted(name)),
            Predicate::Account(inner) => write!(f, "account.{inner}"),
            Predicate::AnyUser(inner) => write!(f, "any_user({inner})"),
        }
    }
}

impl Display for Target {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Target::Field(field) => field.fmt(f),
            Target::Attr(name) if is_identifier(name) => write!(f, "attr.{name}"),
            Target::Attr(name) => write!(f, "attr.{}", Quoted(name)),
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Display for CompareOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(text) => Quoted(text).fmt(f),
            Value::Number(number) => f.write_str(&shortest(*number)),
            Value::Bool(value) => value.fmt(f),
            Value::Now => f.write_str("now"),
            Value::NowMinus(duration) => write!(f, "now - {duration}"),
            Value::NowPlus(duration) => write!(f, "now + {duration}"),
        }
    }
}

/// The shorter of plain (`0.5`) and scientific (`1e-7`) notation; both
/// round-trip exactly.
fn shortest(number: f64) -> String {
    let plain = number.to_string();
    let scientific = format!("{number:e}");
    if scientific.len() < plain.len() {
        scientific
    } else {
        plain
    }
}

impl Display for Duration {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// A string literal: double quotes, with `"`, `\`, newline and tab escaped.
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                other => f.write_char(other)?,
            }
        }
        f.write_char('"')
    }
}

struct List<'a>(&'a [String]);

impl Display for List<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, item) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            Quoted(item).fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::strategy;
    use super::super::{Filter, SubjectKind};
    use super::shortest;

    #[test]
    fn numbers_print_short() {
        let printed: Vec<String> = [5.0, -0.5, 1e21, 1e-7, 123456.0, 0.1 + 0.2, -0.0]
            .into_iter()
            .map(shortest)
            .collect();
        assert_eq!(
            printed,
            [
                "5",
                "-0.5",
                "1e21",
                "1e-7",
                "123456",
                "0.30000000000000004",
                "-0"
            ]
        );
    }

    fn round_trip(filter: &Filter) -> Result<(), TestCaseError> {
        let printed = filter.to_string();
        let reparsed = Filter::parse(&printed, filter.kind())
            .map_err(|diagnostics| TestCaseError::fail(format!("{printed}\n{diagnostics:?}")))?;
        prop_assert_eq!(&reparsed, filter, "printed as {}", printed);
        prop_assert_eq!(reparsed.to_string(), printed);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn user_filters_round_trip(filter in strategy::filter(SubjectKind::User)) {
            round_trip(&filter)?;
        }

        #[test]
        fn account_filters_round_trip(filter in strategy::filter(SubjectKind::Account)) {
            round_trip(&filter)?;
        }

        /// Any token soup: parsing never panics, and what parses round-trips.
        #[test]
        fn token_soup_never_panics(text in strategy::token_soup()) {
            for kind in [SubjectKind::User, SubjectKind::Account] {
                match Filter::parse(&text, kind) {
                    Ok(filter) => round_trip(&filter)?,
                    Err(diagnostics) => prop_assert!(!diagnostics.is_empty()),
                }
            }
        }
    }
}

//! Comparisons, null tests and text tests on fields and attributes: the
//! parts of the compiler that depend on the backend's types (timestamps,
//! JSON, collations).

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, LikeExpr};

use super::{Backend, column, compare, constant, false_};
use crate::segments::filter::{CompareOp, Field, FieldType, SubjectKind, Target, TextOp, Value};

/// Builds typed conditions for one backend at one evaluation instant.
pub(super) struct Typed {
    pub backend: Backend,
    pub now: DateTime<Utc>,
}

impl Typed {
    /// `target OP value`, FALSE when the target is null or absent or the
    /// types do not meet.
    pub fn compare(
        &self,
        kind: SubjectKind,
        alias: &str,
        target: &Target,
        op: CompareOp,
        value: &Value,
    ) -> Expr {
        let field = match target {
            Target::Field(field) => *field,
            Target::Attr(name) => return self.compare_attr(alias, name, op, value),
        };
        let Some(left) = field_column(kind, alias, field) else {
            return false_();
        };
        let holds = match (field.field_type(), value) {
            (FieldType::Text, Value::String(literal)) => {
                self.compare_text(left.clone(), op, literal)
            }
            (FieldType::Date, _) => match value.instant(self.now) {
                Some(instant) => self.compare_instant(left.clone(), op, instant),
                None => return false_(),
            },
            (FieldType::Text, _) => return false_(),
        };
        guard_null(field, left, holds)
    }

    /// `target is null` (or `is not null` when `negated`).
    pub fn is_null(&self, kind: SubjectKind, alias: &str, target: &Target, negated: bool) -> Expr {
        let null = match target {
            Target::Field(field) => match field_column(kind, alias, *field) {
                Some(column) if negated => return column.is_not_null(),
                Some(column) => return column.is_null(),
                None => return constant(!negated),
            },
            Target::Attr(name) => match self.attr(alias, name) {
                // absent or JSON null
                Some(attr) => Func::coalesce([attr.type_name(), Expr::Constant("null".into())]),
                None => return constant(!negated),
            },
        };
        let null_name = Expr::Constant("null".into());
        if negated {
            null.ne(null_name)
        } else {
            null.eq(null_name)
        }
    }

    /// `target contains needle` / `target starts_with needle`, case-insensitive.
    pub fn text(
        &self,
        kind: SubjectKind,
        alias: &str,
        target: &Target,
        op: TextOp,
        needle: &str,
    ) -> Expr {
        let needle = needle.to_lowercase();
        let backend = self.backend;
        if backend == Backend::Postgres && needle.contains('\0') {
            return false_(); // PostgreSQL text holds no NUL
        }
        let matches = |text: Expr| -> Expr {
            let lowered = Func::lower(text);
            match backend {
                // `instr` compares bytes: no pattern syntax, no length limit,
                // and NUL characters are kept (a LIKE pattern ends at one)
                Backend::Sqlite => {
                    let found = Func::cust("instr").arg(lowered).arg(needle.as_str());
                    match op {
                        TextOp::Contains => found.gt(Expr::Constant(0i32.into())),
                        TextOp::StartsWith => found.eq(Expr::Constant(1i32.into())),
                    }
                }
                Backend::Postgres => {
                    let escaped = escape_like(&needle);
                    let pattern = match op {
                        TextOp::Contains => format!("%{escaped}%"),
                        TextOp::StartsWith => format!("{escaped}%"),
                    };
                    Expr::expr(lowered).like(LikeExpr::new(pattern).escape('\\'))
                }
            }
        };
        match target {
            Target::Field(field) => match field_column(kind, alias, *field) {
                Some(text) if field.field_type() == FieldType::Text => {
                    guard_null(*field, text.clone(), matches(text))
                }
                _ => false_(),
            },
            Target::Attr(name) => match self.attr(alias, name) {
                Some(attr) => when(attr.type_is(JsonType::String), matches(attr.text())),
                None => false_(),
            },
        }
    }

    /// `left >= instant` for a timestamp column (never NULL itself when
    /// `left` is not).
    pub fn at_or_after(&self, left: Expr, instant: DateTime<Utc>) -> Expr {
        self.compare_instant(left, CompareOp::Ge, instant)
    }

    /// `left OP instant` for a timestamp column. SQLite compares the RFC
    /// 3339 text that sqlx writes for both sides. PostgreSQL keeps
    /// microseconds: with `d` a whole number of microseconds, `d < v` iff
    /// `d < ceil(v)`, `d <= v` iff `d <= floor(v)`, and so on.
    fn compare_instant(&self, left: Expr, op: CompareOp, instant: DateTime<Utc>) -> Expr {
        let floor = instant.trunc_subsecs(6);
        if self.backend == Backend::Sqlite || floor == instant {
            return compare(left, op, Expr::val(instant));
        }
        let ceil = floor
            .checked_add_signed(TimeDelta::microseconds(1))
            .unwrap_or(floor);
        match op {
            CompareOp::Eq => false_(),
            CompareOp::Ne => constant(true),
            CompareOp::Lt => left.lt(Expr::val(ceil)),
            CompareOp::Le => left.lte(Expr::val(floor)),
            CompareOp::Gt => left.gt(Expr::val(floor)),
            CompareOp::Ge => left.gte(Expr::val(ceil)),
        }
    }

    /// `left OP literal`, comparing the bytes of the UTF-8 text.
    fn compare_text(&self, left: Expr, op: CompareOp, literal: &str) -> Expr {
        if self.backend == Backend::Sqlite {
            // BINARY collation: memcmp
            return compare(left, op, Expr::val(literal));
        }
        let ordered = |left: Expr| Expr::cust_with_expr("($1 COLLATE \"C\")", left);
        if let Some(nul) = literal.find('\0') {
            // PostgreSQL text holds no NUL, so `left` is never equal to the
            // literal and orders against it as against its part before the NUL.
            let before = Expr::val(&literal[..nul]);
            return match op {
                CompareOp::Eq => false_(),
                CompareOp::Ne => constant(true),
                CompareOp::Lt | CompareOp::Le => ordered(left).lte(before),
                CompareOp::Gt | CompareOp::Ge => ordered(left).gt(before),
            };
        }
        if op.is_equality() {
            compare(left, op, Expr::val(literal))
        } else {
            compare(ordered(left), op, Expr::val(literal))
        }
    }

    fn compare_attr(&self, alias: &str, name: &str, op: CompareOp, value: &Value) -> Expr {
        let Some(attr) = self.attr(alias, name) else {
            return false_();
        };
        match value {
            Value::Number(number) => when(
                attr.type_is(JsonType::Number),
                compare(attr.number(), op, Expr::val(*number)),
            ),
            Value::String(literal) => when(
                attr.type_is(JsonType::String),
                self.compare_text(attr.text(), op, literal),
            ),
            Value::Bool(flag) => match op {
                CompareOp::Eq => attr.is_bool(*flag),
                CompareOp::Ne => attr.is_bool(!*flag),
                _ => false_(),
            },
            Value::Now | Value::NowMinus(_) | Value::NowPlus(_) => match value.instant(self.now) {
                Some(instant) => when(
                    attr.type_is(JsonType::String),
                    attr.is_date()
                        .and(self.compare_date_text(attr.text(), op, instant)),
                ),
                None => false_(),
            },
        }
    }

    /// `midnight(date) OP instant` for `date`, the text of a valid
    /// `YYYY-MM-DD` date: a text comparison against a date computed here
    /// (`midnight(d) < t` iff `d < ceil(t)`, `midnight(d) <= t` iff
    /// `d <= floor(t)`, and so on, `floor` and `ceil` being the days of `t`).
    fn compare_date_text(&self, date: Expr, op: CompareOp, instant: DateTime<Utc>) -> Expr {
        let floor = instant.date_naive();
        let exact = floor.and_hms_opt(0, 0, 0).map(|m| m.and_utc()) == Some(instant);
        let ceil = if exact { Some(floor) } else { floor.succ_opt() };
        let text = |day: chrono::NaiveDate| day.format("%Y-%m-%d").to_string();
        let bound = |day: Option<chrono::NaiveDate>, op: CompareOp| match day {
            // Past the last representable day: every date is below it.
            None => constant(matches!(op, CompareOp::Lt | CompareOp::Le | CompareOp::Ne)),
            Some(day) => self.compare_text(date.clone(), op, &text(day)),
        };
        match op {
            CompareOp::Lt => bound(ceil, CompareOp::Lt),
            CompareOp::Le => bound(Some(floor), CompareOp::Le),
            CompareOp::Gt => bound(Some(floor), CompareOp::Gt),
            CompareOp::Ge => bound(ceil, CompareOp::Ge),
            CompareOp::Eq if exact => bound(Some(floor), CompareOp::Eq),
            CompareOp::Eq => false_(),
            CompareOp::Ne if exact => bound(Some(floor), CompareOp::Ne),
            CompareOp::Ne => constant(true),
        }
    }

    /// The attribute `name` of the row aliased `alias`, or `None` when no
    /// row can have it.
    fn attr<'n>(&self, alias: &str, name: &'n str) -> Option<Attr<'n>> {
        if self.backend == Backend::Postgres && name.contains('\0') {
            return None; // jsonb keys hold no NUL
        }
        Some(Attr {
            backend: self.backend,
            document: column(alias, "attributes"),
            name,
        })
    }
}

/// The column of a built-in field, or `None` when subjects of this kind do
/// not have it (it is then null for every subject, as in the evaluator).
fn field_column(kind: SubjectKind, alias: &str, field: Field) -> Option<Expr> {
    field.applies_to(kind).then(|| column(alias, field.name()))
}

/// `column IS NOT NULL AND holds` for the columns that may be null.
fn guard_null(field: Field, column: Expr, holds: Expr) -> Expr {
    match field {
        Field::Email | Field::Name | Field::CreatedAt => holds,
        _ => column.is_not_null().and(holds),
    }
}

/// `CASE WHEN condition THEN holds ELSE FALSE END`: `holds` is evaluated
/// only when `condition` is true (PostgreSQL does not promise to evaluate
/// `AND` left to right, and a cast to a number can fail).
fn when(condition: Expr, holds: Expr) -> Expr {
    Expr::case(condition, holds).finally(false_()).into()
}

/// A LIKE pattern matching `text` literally, with `\` as the escape.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[derive(Clone, Copy)]
enum JsonType {
    String,
    Number,
}

/// One key of a row's `attributes` JSON object.
struct Attr<'n> {
    backend: Backend,
    document: Expr,
    name: &'n str,
}

impl Attr<'_> {
    /// SQLite: `$."name"`, the name escaped as a JSON string (SQLite 3.45
    /// and later read escapes in quoted path labels).
    fn path(&self) -> Expr {
        let mut path = String::from("$.\"");
        for c in self.name.chars() {
            match c {
                '"' => path.push_str("\\\""),
                '\\' => path.push_str("\\\\"),
                c if u32::from(c) < 0x20 => path.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => path.push(c),
            }
        }
        path.push('"');
        Expr::val(path)
    }

    /// PostgreSQL: `document -> name`, the JSON value.
    fn element(&self) -> Expr {
        Expr::cust_with_exprs("($1 -> $2)", [self.document.clone(), Expr::val(self.name)])
    }

    /// The JSON type's name, NULL when the key is absent: SQLite `json_type`
    /// (`text`, `integer`, `real`, `true`, `null`, ...), PostgreSQL
    /// `jsonb_typeof` (`string`, `number`, `boolean`, `null`, ...).
    fn type_name(&self) -> Expr {
        match self.backend {
            Backend::Sqlite => Func::cust("json_type")
                .arg(self.document.clone())
                .arg(self.path())
                .into(),
            Backend::Postgres => Func::cust("jsonb_typeof").arg(self.element()).into(),
        }
    }

    fn type_is(&self, wanted: JsonType) -> Expr {
        let names: &[&str] = match (self.backend, wanted) {
            (Backend::Sqlite, JsonType::String) => &["text"],
            (Backend::Sqlite, JsonType::Number) => &["integer", "real"],
            (Backend::Postgres, JsonType::String) => &["string"],
            (Backend::Postgres, JsonType::Number) => &["number"],
        };
        match names {
            [name] => self.type_name().eq(Expr::Constant((*name).into())),
            _ => self
                .type_name()
                .is_in(names.iter().map(|name| Expr::Constant((*name).into()))),
        }
    }

    /// The value as SQL text (meaningful when it is a JSON string).
    fn text(&self) -> Expr {
        match self.backend {
            Backend::Sqlite => Func::cust("json_extract")
                .arg(self.document.clone())
                .arg(self.path())
                .into(),
            Backend::Postgres => {
                Expr::cust_with_exprs("($1 ->> $2)", [self.document.clone(), Expr::val(self.name)])
            }
        }
    }

    /// The value (a JSON string) is a valid `YYYY-MM-DD` date of the years
    /// 0001 to 9999, as [`attr_date`](crate::segments::filter::attr_date)
    /// reads it: the shape, then the calendar (SQLite: `date(x)` gives `x`
    /// back; PostgreSQL: `tagsmith_is_date`, a function the migrations
    /// create, which casts and catches the error).
    fn is_date(&self) -> Expr {
        let text = self.text();
        let calendar = match self.backend {
            Backend::Sqlite => Func::cust("date").arg(text.clone()).eq(text.clone()),
            Backend::Postgres => Func::cust("tagsmith_is_date").arg(text.clone()).into(),
        };
        let shaped = match self.backend {
            Backend::Sqlite => Expr::cust_with_exprs(
                "(? GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')",
                [text.clone()],
            ),
            Backend::Postgres => {
                Expr::cust_with_exprs("($1 ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$')", [text.clone()])
            }
        };
        // CASE keeps PostgreSQL from calling the function on other text first.
        when(
            shaped.and(text.clone().gte(Expr::Constant("0001".into()))),
            Func::coalesce([calendar, false_()]).into(),
        )
    }

    /// The value as an f64 (only when it is a JSON number: on PostgreSQL the
    /// cast fails on other text).
    fn number(&self) -> Expr {
        let kind = match self.backend {
            Backend::Sqlite => "REAL",
            Backend::Postgres => "double precision",
        };
        Func::cast_as(self.text(), Alias::new(kind)).into()
    }

    /// The value is the JSON boolean `flag` (never NULL).
    fn is_bool(&self, flag: bool) -> Expr {
        let word = if flag { "true" } else { "false" };
        let holds = match self.backend {
            Backend::Sqlite => self.type_name().eq(Expr::Constant(word.into())),
            Backend::Postgres => self.element().eq(Func::cast_as(
                Expr::Constant(word.into()),
                Alias::new("jsonb"),
            )),
        };
        Func::coalesce([holds, false_()]).into()
    }
}

//! Predicates and values: everything from a field or function name to the
//! end of one predicate. Each predicate read is type-checked at once.

use std::ops::Range;

use super::super::SubjectKind;
use super::super::ast::{CompareOp, Duration, Field, Predicate, Target, TextOp, Value};
use super::super::check::{self, Part, SegmentRef};
use super::super::lexer::TokenKind;
use super::{EXPECTED_PREDICATE, Parser};

const EXPECTED_VALUE: &str = "a value (a string, a number, true, false, now or now - DURATION)";
const EXPECTED_OPERATOR: &str =
    r#"an operator (=, !=, <, <=, >, >=), "is", "contains" or "starts_with""#;
const FUNCTIONS: &str = "tagged, tagged_any, tagged_all, events, active_days, in_segment, any_user";
const RESERVED: [&str; 10] = [
    "and",
    "or",
    "is",
    "null",
    "true",
    "false",
    "now",
    "contains",
    "starts_with",
    "not",
];

impl Parser<'_> {
    pub(super) fn predicate(&mut self, kind: SubjectKind) -> Option<Predicate> {
        let token = self.current().clone();
        if token.kind != TokenKind::Ident {
            self.expected(EXPECTED_PREDICATE);
            return None;
        }
        if !self.term(token.span.clone()) {
            return None;
        }
        let word = self.text[token.span.clone()].to_ascii_lowercase();
        match word.as_str() {
            "tagged" | "tagged_any" | "tagged_all" => self.tag_predicate(&word),
            "events" => self.events(),
            "active_days" => self.active_days(),
            "in_segment" => self.in_segment(kind),
            "account" => self.account(kind),
            "any_user" => self.any_user(kind),
            "attr" => {
                self.bump();
                self.expect(&TokenKind::Dot, r#""." after attr"#)?;
                let name = match &self.current().kind {
                    TokenKind::Ident => self.text[self.span()].to_string(),
                    TokenKind::Str(name) => name.clone(),
                    _ => {
                        self.expected("an attribute name");
                        return None;
                    }
                };
                self.bump();
                let head = token.span.start..self.end_of_previous();
                self.target_tail(Target::Attr(name), head, kind)
            }
            _ if RESERVED.contains(&word.as_str()) => {
                self.expected(EXPECTED_PREDICATE);
                None
            }
            _ => {
                if let Some(field) = Field::from_name(&word) {
                    self.bump();
                    return self.target_tail(Target::Field(field), token.span, kind);
                }
                let written = &self.text[token.span.clone()];
                let message = if *self.nth_kind(1) == TokenKind::LParen {
                    format!("unknown function {written:?} (expected one of: {FUNCTIONS})")
                } else {
                    format!(
                        "unknown field {written:?} for {} (expected one of: {}, attr.NAME)",
                        kind.plural(),
                        check::field_list(kind)
                    )
                };
                self.report(token.span, message);
                None
            }
        }
    }

    /// After a field or `attr.NAME`: `OP VALUE`, `is [not] null`,
    /// `contains STRING` or `starts_with STRING`.
    fn target_tail(
        &mut self,
        target: Target,
        head: Range<usize>,
        kind: SubjectKind,
    ) -> Option<Predicate> {
        let value_start = self.span().start;
        let predicate = if self.eat_word("is") {
            let negated = self.eat_word("not");
            if !self.eat_word("null") {
                self.expected(r#""null""#);
                return None;
            }
            Predicate::IsNull { target, negated }
        } else if self.at_word("contains") || self.at_word("starts_with") {
            let op = if self.at_word("contains") {
                TextOp::Contains
            } else {
                TextOp::StartsWith
            };
            self.bump();
            let needle = self.string("a string")?;
            Predicate::Text { target, op, needle }
        } else if let Some(op) = self.compare_op() {
            let value = self.value()?;
            Predicate::Compare { target, op, value }
        } else {
            self.expected(EXPECTED_OPERATOR);
            return None;
        };
        let value_span = value_start..self.end_of_previous();
        for (part, message) in check::predicate(&predicate, kind) {
            let span = match part {
                Part::Head => head.clone(),
                Part::Value => value_span.clone(),
            };
            self.report(span, message);
        }
        Some(predicate)
    }

    fn compare_op(&mut self) -> Option<CompareOp> {
        let op = match self.current().kind {
            TokenKind::Eq => CompareOp::Eq,
            TokenKind::Ne => CompareOp::Ne,
            TokenKind::Lt => CompareOp::Lt,
            TokenKind::Le => CompareOp::Le,
            TokenKind::Gt => CompareOp::Gt,
            TokenKind::Ge => CompareOp::Ge,
            _ => return None,
        };
        self.bump();
        Some(op)
    }

    fn value(&mut self) -> Option<Value> {
        match self.current().kind.clone() {
            TokenKind::Str(text) => {
                self.bump();
                Some(Value::String(text))
            }
            TokenKind::Number => self.number(false),
            TokenKind::Minus if *self.nth_kind(1) == TokenKind::Number => {
                self.bump();
                self.number(true)
            }
            TokenKind::Ident if self.at_word("true") || self.at_word("false") => {
                let value = self.at_word("true");
                self.bump();
                Some(Value::Bool(value))
            }
            TokenKind::Ident if self.at_word("now") => {
                self.bump();
                if self.eat(&TokenKind::Minus) {
                    Some(Value::NowMinus(self.duration()?))
                } else if self.eat(&TokenKind::Plus) {
                    Some(Value::NowPlus(self.duration()?))
                } else {
                    Some(Value::Now)
                }
            }
            _ => {
                self.expected(EXPECTED_VALUE);
                None
            }
        }
    }

    fn number(&mut self, negative: bool) -> Option<Value> {
        let span = self.span();
        self.bump();
        match self.text[span.clone()].parse::<f64>() {
            Ok(number) if number.is_finite() => {
                Some(Value::Number(if negative { -number } else { number }))
            }
            _ => {
                self.report(span, "number out of range".into());
                None
            }
        }
    }

    fn string(&mut self, what: &str) -> Option<String> {
        if let TokenKind::Str(text) = &self.current().kind {
            let text = text.clone();
            self.bump();
            Some(text)
        } else {
            self.expected(what);
            None
        }
    }

    fn duration(&mut self) -> Option<Duration> {
        if let TokenKind::Duration(duration) = self.current().kind {
            self.bump();
            Some(duration)
        } else {
            self.expected("a duration such as 30d (m, h, d or w)");
            None
        }
    }

    /// `OP INT` after `events(...)` and `active_days(...)`.
    fn count_comparison(&mut self) -> Option<(CompareOp, u32)> {
        let Some(op) = self.compare_op() else {
            self.expected("an operator (=, !=, <, <=, >, >=)");
            return None;
        };
        let token = self.current().clone();
        let text = &self.text[token.span.clone()];
        if token.kind != TokenKind::Number || !text.bytes().all(|b| b.is_ascii_digit()) {
            self.expected("a whole number");
            return None;
        }
        self.bump();
        match text.parse::<u32>() {
            Ok(count) => Some((op, count)),
            Err(_) => {
                self.report(
                    token.span,
                    format!("count {text} is too large (at most {})", u32::MAX),
                );
                None
            }
        }
    }

    fn tag_predicate(&mut self, word: &str) -> Option<Predicate> {
        self.bump();
        self.expect(&TokenKind::LParen, &format!(r#""(" after {word}"#))?;
        let args_start = self.span().start;
        let mut patterns = vec![self.string("a tag name or pattern (a string)")?];
        while self.eat(&TokenKind::Comma) {
            if !self.tag_argument(word, patterns.len() + 1, self.span()) {
                return None;
            }
            patterns.push(self.string("a tag name or pattern (a string)")?);
        }
        let args = args_start..self.end_of_previous();
        self.expect(&TokenKind::RParen, r#"")" or ",""#)?;
        match word {
            "tagged_any" => Some(Predicate::TaggedAny(patterns)),
            "tagged_all" => Some(Predicate::TaggedAll(patterns)),
            _ => {
                if patterns.len() > 1 {
                    self.report(
                        args,
                        "tagged takes one tag: use tagged_any or tagged_all for several".into(),
                    );
                }
                patterns.pop().map(Predicate::Tagged)
            }
        }
    }

    fn events(&mut self) -> Option<Predicate> {
        self.bump();
        self.expect(&TokenKind::LParen, r#""(" after events"#)?;
        let name = self.string("an event name (a string)")?;
        self.expect(&TokenKind::Comma, r#""," then a duration"#)?;
        let within = self.duration()?;
        self.expect(&TokenKind::RParen, r#"")""#)?;
        let (op, count) = self.count_comparison()?;
        Some(Predicate::Events {
            name,
            within,
            op,
            count,
        })
    }

    fn active_days(&mut self) -> Option<Predicate> {
        self.bump();
        self.expect(&TokenKind::LParen, r#""(" after active_days"#)?;
        let within = self.duration()?;
        self.expect(&TokenKind::RParen, r#"")""#)?;
        let (op, count) = self.count_comparison()?;
        Some(Predicate::ActiveDays { within, op, count })
    }

    fn in_segment(&mut self, kind: SubjectKind) -> Option<Predicate> {
        self.bump();
        self.expect(&TokenKind::LParen, r#""(" after in_segment"#)?;
        let span = self.span();
        let name = self.string("a segment name (a string)")?;
        self.expect(&TokenKind::RParen, r#"")""#)?;
        self.segment_refs.push(SegmentRef {
            name: name.clone(),
            kind,
            span,
            depth: self.depth,
            relations: self.relations,
        });
        Some(Predicate::InSegment(name))
    }

    fn account(&mut self, kind: SubjectKind) -> Option<Predicate> {
        let head = self.span();
        self.bump();
        if let Some(message) = check::account_prefix(kind) {
            self.report(head, message);
        }
        self.expect(&TokenKind::Dot, r#""." after account"#)?;
        if !self.enter_relation() {
            return None;
        }
        if !self.at(&TokenKind::Ident) {
            self.expected(r#"a field or predicate after "account.""#);
            self.leave_relation();
            return None;
        }
        let inner = self.predicate(SubjectKind::Account);
        self.leave_relation();
        Some(Predicate::Account(Box::new(inner?)))
    }

    fn any_user(&mut self, kind: SubjectKind) -> Option<Predicate> {
        let head = self.span();
        self.bump();
        if let Some(message) = check::any_user(kind) {
            self.report(head, message);
        }
        self.expect(&TokenKind::LParen, r#""(" after any_user"#)?;
        if !self.enter_relation() {
            return None;
        }
        self.groups += 1;
        let inner = self.or_expr(SubjectKind::User);
        self.groups -= 1;
        self.leave_relation();
        self.expect(&TokenKind::RParen, r#"")""#)?;
        Some(Predicate::AnyUser(Box::new(inner?)))
    }
}

//! Recursive-descent parser. It keeps going after an error: a predicate that
//! cannot be read is reported and skipped up to the next `and`, `or` or `)`
//! (outside nested parentheses), so one pass reports every problem. Each
//! predicate is type-checked (`check.rs`) as soon as it is read, with the
//! subject kind in force at that point.

use std::ops::Range;

use super::ast::{CompareOp, Duration, Expr, Field, Predicate, Target, TextOp, Value};
use super::check::{self, Part, SegmentRef};
use super::lexer::{RawDiagnostic, Token, TokenKind, tokenize};
use super::{MAX_DEPTH, SubjectKind};

/// What the parser found: the tree when it could build one, the problems,
/// and the `in_segment` references for the segment check.
pub(super) struct Parsed {
    pub root: Option<Expr>,
    pub diagnostics: Vec<RawDiagnostic>,
    pub segment_refs: Vec<SegmentRef>,
}

pub(super) fn parse(text: &str, kind: SubjectKind) -> Parsed {
    let (tokens, lexer_diagnostics) = tokenize(text);
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        diagnostics: Vec::new(),
        segment_refs: Vec::new(),
        depth: 0,
        groups: 0,
        too_deep_reported: false,
    };
    let root = parser.top(kind);
    let mut diagnostics = lexer_diagnostics;
    diagnostics.append(&mut parser.diagnostics);
    diagnostics.sort_by_key(|(span, _)| span.start);
    Parsed {
        root,
        diagnostics,
        segment_refs: parser.segment_refs,
    }
}

const EXPECTED_PREDICATE: &str = r#"a field, tag predicate or "(""#;
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

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    diagnostics: Vec<RawDiagnostic>,
    segment_refs: Vec<SegmentRef>,
    /// Current nesting of parentheses, `not`, `account.` and `any_user`.
    depth: usize,
    /// Open `(` and `any_user(`: whether a `)` may follow an operand.
    groups: usize,
    too_deep_reported: bool,
}

impl Parser<'_> {
    // ---- token access ----

    fn current(&self) -> &Token {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn nth_kind(&self, ahead: usize) -> &TokenKind {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + ahead).min(last)].kind
    }

    fn span(&self) -> Range<usize> {
        self.current().span.clone()
    }

    fn bump(&mut self) {
        if self.current().kind != TokenKind::Eof {
            self.pos += 1;
        }
    }

    fn at(&self, kind: &TokenKind) -> bool {
        &self.current().kind == kind
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        let found = self.at(kind);
        if found {
            self.bump();
        }
        found
    }

    fn at_word(&self, word: &str) -> bool {
        let token = self.current();
        token.kind == TokenKind::Ident && self.text[token.span.clone()].eq_ignore_ascii_case(word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.at_word(word);
        if found {
            self.bump();
        }
        found
    }

    /// End of the previous token: where a construct that just ended stops.
    fn end_of_previous(&self) -> usize {
        match self.pos.checked_sub(1) {
            Some(previous) => self.tokens[previous].span.end,
            None => 0,
        }
    }

    // ---- errors ----

    fn report(&mut self, span: Range<usize>, message: String) {
        let duplicate = self
            .diagnostics
            .last()
            .is_some_and(|(last_span, last_message)| {
                last_span.start == span.start && *last_message == message
            });
        if !duplicate {
            self.diagnostics.push((span, message));
        }
    }

    /// Reports `expected X but found Y` at the current token, unless the
    /// lexer already reported that token.
    fn expected(&mut self, what: &str) {
        let token = self.current().clone();
        if token.kind != TokenKind::Error {
            let found = self.describe(&token);
            self.report(token.span, format!("expected {what} but found {found}"));
        }
    }

    fn describe(&self, token: &Token) -> String {
        let text = &self.text[token.span.clone()];
        match &token.kind {
            TokenKind::Ident => format!("{text:?}"),
            TokenKind::Str(_) => format!("the string {text}"),
            TokenKind::Number => format!("the number {text}"),
            TokenKind::Duration(_) => format!("the duration {text}"),
            TokenKind::Eof => "end of input".into(),
            TokenKind::Error => "an invalid token".into(),
            _ => format!("{text:?}"),
        }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Option<()> {
        if self.eat(kind) {
            Some(())
        } else {
            self.expected(what);
            None
        }
    }

    /// Skips to the next `and`, `or` or `)` outside nested parentheses, or to the end.
    fn sync(&mut self) {
        let mut open = 0usize;
        loop {
            match self.current().kind {
                TokenKind::Eof => return,
                TokenKind::RParen if open == 0 => return,
                TokenKind::RParen => open -= 1,
                TokenKind::LParen => open += 1,
                TokenKind::Ident if open == 0 && (self.at_word("and") || self.at_word("or")) => {
                    return;
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// Enters one nesting level; false (reported once) past [`MAX_DEPTH`].
    fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                let span = self.span();
                self.report(
                    span,
                    format!("expression nested too deeply (at most {MAX_DEPTH} levels)"),
                );
            }
            return false;
        }
        self.depth += 1;
        true
    }

    // ---- expressions ----

    fn top(&mut self, kind: SubjectKind) -> Option<Expr> {
        let root = self.or_expr(kind);
        while !self.at(&TokenKind::Eof) {
            // or_expr stops only at `)` or the end: this `)` is unmatched.
            let span = self.span();
            self.report(span, r#"unmatched ")""#.into());
            self.bump();
            if self.at_word("and") || self.at_word("or") {
                self.bump();
            }
            if !self.at(&TokenKind::Eof) {
                self.or_expr(kind);
            }
        }
        root
    }

    fn or_expr(&mut self, kind: SubjectKind) -> Option<Expr> {
        let mut operands = Vec::new();
        let mut failed = false;
        loop {
            match self.and_expr(kind) {
                Some(operand) => operands.push(operand),
                None => failed = true,
            }
            if !self.eat_word("or") {
                break;
            }
        }
        join(operands, failed, Expr::Or)
    }

    fn and_expr(&mut self, kind: SubjectKind) -> Option<Expr> {
        let mut operands = Vec::new();
        let mut failed = false;
        loop {
            match self.unary(kind) {
                Some(operand) => operands.push(operand),
                None => failed = true,
            }
            if self.eat_word("and") {
                continue;
            }
            if self.at_word("or") || self.at(&TokenKind::Eof) || self.at(&TokenKind::RParen) {
                break;
            }
            let what = if self.groups > 0 {
                r#""and", "or" or ")""#
            } else {
                r#""and", "or" or end of input"#
            };
            self.expected(what);
            failed = true;
            self.sync();
            if !self.eat_word("and") {
                break;
            }
        }
        join(operands, failed, Expr::And)
    }

    fn unary(&mut self, kind: SubjectKind) -> Option<Expr> {
        if self.at_word("not") || self.at(&TokenKind::LParen) {
            if !self.enter() {
                self.sync();
                return None;
            }
            let result = if self.eat_word("not") {
                self.unary(kind).map(|operand| Expr::Not(Box::new(operand)))
            } else {
                self.bump();
                self.groups += 1;
                let inner = self.or_expr(kind);
                self.groups -= 1;
                self.expect(&TokenKind::RParen, r#"")""#).and(inner)
            };
            self.depth -= 1;
            return result;
        }
        let predicate = self.predicate(kind);
        if predicate.is_none() {
            self.sync();
        }
        predicate.map(Expr::Predicate)
    }

    // ---- predicates ----

    fn predicate(&mut self, kind: SubjectKind) -> Option<Predicate> {
        let token = self.current().clone();
        if token.kind != TokenKind::Ident {
            self.expected(EXPECTED_PREDICATE);
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

    /// After a field or `attr.NAME`: `OP VALUE`, `is [not] null`, `contains STRING`, `starts_with STRING`.
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
        if !self.enter() {
            return None;
        }
        let inner = self.predicate(SubjectKind::Account);
        self.depth -= 1;
        Some(Predicate::Account(Box::new(inner?)))
    }

    fn any_user(&mut self, kind: SubjectKind) -> Option<Predicate> {
        let head = self.span();
        self.bump();
        if let Some(message) = check::any_user(kind) {
            self.report(head, message);
        }
        self.expect(&TokenKind::LParen, r#""(" after any_user"#)?;
        if !self.enter() {
            return None;
        }
        self.groups += 1;
        let inner = self.or_expr(SubjectKind::User);
        self.groups -= 1;
        self.depth -= 1;
        self.expect(&TokenKind::RParen, r#"")""#)?;
        Some(Predicate::AnyUser(Box::new(inner?)))
    }
}

/// `operands` joined by `make`, or the only operand; `None` when one failed.
fn join(mut operands: Vec<Expr>, failed: bool, make: fn(Vec<Expr>) -> Expr) -> Option<Expr> {
    if failed {
        return None;
    }
    match operands.len() {
        0 => None,
        1 => operands.pop(),
        _ => Some(make(operands)),
    }
}

#[cfg(test)]
mod tests;

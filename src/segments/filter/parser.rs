//! Recursive-descent parser. It keeps going after an error: a predicate that
//! cannot be read is reported and skipped up to the next `and`, `or` or `)`
//! (outside nested parentheses), so one pass reports every problem. Each
//! predicate is type-checked (`check.rs`) as soon as it is read, with the
//! subject kind in force at that point. Predicates and values are read in
//! `parser/predicate.rs`.

use std::ops::Range;

use super::ast::Expr;
use super::check::SegmentRef;
use super::lexer::{RawDiagnostic, Token, TokenKind, tokenize};
use super::{MAX_ARGS, MAX_DEPTH, MAX_RELATION_DEPTH, MAX_TERMS, SubjectKind};

/// What the parser found: the tree when it could build one, the problems,
/// and the `in_segment` references for the segment check.
pub(super) struct Parsed {
    pub root: Option<Expr>,
    pub diagnostics: Vec<RawDiagnostic>,
    pub segment_refs: Vec<SegmentRef>,
    /// Terms read (see [`MAX_TERMS`]), `in_segment` ones included.
    pub terms: usize,
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
        terms: 0,
        stopped_at: None,
        relations: 0,
    };
    let root = parser.top(kind);
    let mut diagnostics = lexer_diagnostics;
    if let Some(stop) = parser.stopped_at {
        // Past a broken size limit nothing is read: the lexer's
        // complaints about the rest are not reported either.
        diagnostics.retain(|(span, _)| span.start <= stop);
    }
    diagnostics.append(&mut parser.diagnostics);
    diagnostics.sort_by_key(|(span, _)| span.start);
    Parsed {
        root,
        diagnostics,
        segment_refs: parser.segment_refs,
        terms: parser.terms,
    }
}

const EXPECTED_PREDICATE: &str = r#"a field, tag predicate or "(""#;

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
    /// Terms read so far (see [`MAX_TERMS`]).
    terms: usize,
    /// Where a size limit was broken: the rest of the input is not read.
    stopped_at: Option<usize>,
    /// Current nesting of `account.` and `any_user`.
    relations: usize,
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
        if self.stopped_at.is_some() {
            return;
        }
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
        self.sync_from(self.pos);
    }

    /// Like [`Parser::sync`], after a predicate that started at token `start`
    /// failed: a `)` closing a parenthesis that the predicate opened
    /// (`tagged(`, `events(`) is skipped rather than taken for the end of a
    /// group. An `and` or `or` still stops the skipping, even inside such an
    /// unclosed call, so that the rest of the filter is checked.
    fn sync_from(&mut self, start: usize) {
        let mut owed = 0usize;
        for token in &self.tokens[start.min(self.pos)..self.pos] {
            match token.kind {
                TokenKind::LParen => owed += 1,
                TokenKind::RParen => owed = owed.saturating_sub(1),
                _ => {}
            }
        }
        let mut open = 0usize;
        loop {
            match self.current().kind {
                TokenKind::Eof => return,
                TokenKind::RParen if open > 0 => open -= 1,
                TokenKind::RParen if owed > 0 => owed -= 1,
                TokenKind::RParen => return,
                TokenKind::LParen => open += 1,
                TokenKind::Ident if open == 0 && (self.at_word("and") || self.at_word("or")) => {
                    return;
                }
                _ => {}
            }
            self.bump();
        }
    }

    /// Reports a broken size limit and stops: the parser jumps to the end of
    /// the input and reports nothing more, so that however long the input,
    /// the work done past the limit is nil and the filter is refused.
    fn stop(&mut self, span: Range<usize>, message: String) {
        let start = span.start;
        self.report(span, message);
        self.stopped_at = Some(start);
        self.pos = self.tokens.len().saturating_sub(1);
    }

    /// Counts one term starting at `span`; false (and the parser stops)
    /// past [`MAX_TERMS`].
    pub(super) fn term(&mut self, span: Range<usize>) -> bool {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            self.stop(
                span,
                format!(
                    "filter too long: at most {MAX_TERMS} terms (predicates, each tag pattern \
                     of tagged_any/tagged_all counting as one)"
                ),
            );
            return false;
        }
        true
    }

    /// Counts one more pattern of a `word(...)` tag call at `span`; false
    /// (and the parser stops) past [`MAX_ARGS`] patterns or [`MAX_TERMS`] terms.
    pub(super) fn tag_argument(&mut self, word: &str, count: usize, span: Range<usize>) -> bool {
        if count > MAX_ARGS {
            self.stop(span, format!("{word} takes at most {MAX_ARGS} tags"));
            return false;
        }
        count == 1 || self.term(span)
    }

    /// Enters `account.` or `any_user` (one nesting level, one relation
    /// level); false (reported, and the parser stops) past
    /// [`MAX_RELATION_DEPTH`] relations, false past [`MAX_DEPTH`] levels.
    pub(super) fn enter_relation(&mut self) -> bool {
        if self.relations >= MAX_RELATION_DEPTH {
            let span = self.span();
            self.stop(
                span,
                format!(
                    "account. and any_user(…) nested too deeply (at most {MAX_RELATION_DEPTH} \
                     levels)"
                ),
            );
            return false;
        }
        if !self.enter() {
            return false;
        }
        self.relations += 1;
        true
    }

    /// Leaves `account.` or `any_user`.
    pub(super) fn leave_relation(&mut self) {
        self.relations -= 1;
        self.depth -= 1;
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
        if self.stopped_at.is_some() {
            return None;
        }
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
        let start = self.pos;
        let predicate = self.predicate(kind);
        if predicate.is_none() {
            self.sync_from(start);
        }
        predicate.map(Expr::Predicate)
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

mod predicate;
#[cfg(test)]
mod tests;

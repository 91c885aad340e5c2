//! The segment filter language: lexer, parser, type check, canonical printer
//! and in-memory evaluator. Pure code: no IO, no clock (the evaluation instant
//! is a parameter), no database. The SQL compiler lives beside this module and
//! must give the same answers as [`evaluate`]; the semantics below are its
//! contract.
//!
//! # Syntax
//!
//! ```text
//! expr      := or ;  or := and ("or" and)* ;  and := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | predicate
//! predicate := tagged(TAG) | tagged_any(TAG, ...) | tagged_all(TAG, ...)
//!            | TARGET OP VALUE | TARGET is null | TARGET is not null
//!            | TARGET contains STRING | TARGET starts_with STRING
//!            | events(STRING, DURATION) OP INT | active_days(DURATION) OP INT
//!            | in_segment(STRING) | account.predicate | any_user(expr)
//! TARGET    := FIELD | attr.NAME | attr."any name"
//! FIELD     := email | first_name | last_name | name | external_id
//!            | created_at | last_seen_at | last_activity_at
//! OP        := = | != | < | <= | > | >=
//! VALUE     := STRING | NUMBER | -NUMBER | true | false | now | now - DURATION | now + DURATION
//! DURATION  := INT followed by m | h | d | w (30d), at most 36500d
//! ```
//!
//! Keywords, field and function names and duration units are
//! case-insensitive (`AND`, `Email`, `30D`); attribute names are not. Strings
//! are double-quoted with the escapes `\"` `\\` `\n` `\t`. Whitespace and
//! newlines go anywhere between tokens. `and` binds tighter than `or`; `not`
//! applies to the unary that follows (`not a and b` is `(not a) and b`).
//! Nesting (parentheses, `not`, `account.`, `any_user`) is limited to
//! [`MAX_DEPTH`] levels.
//!
//! # Size limits (checked while parsing, so later passes see bounded trees)
//!
//! - At most [`MAX_TERMS`] terms: every predicate is one term (`account.P`
//!   is two: `account.` and `P`; `any_user(E)` is one plus E's), except
//!   `tagged_any` and `tagged_all`, which count one term per tag pattern.
//! - At most [`MAX_ARGS`] patterns in one `tagged_any` or `tagged_all`.
//! - At most [`MAX_RELATION_DEPTH`] levels of `account.` and `any_user`
//!   within one another (they count toward [`MAX_DEPTH`] too).
//! - With every `in_segment` replaced by the named segment's filter
//!   (repeats counted), at most [`MAX_EXPANDED_TERMS`] terms,
//!   [`MAX_DEPTH`] levels of nesting and [`MAX_RELATION_DEPTH`] levels of
//!   relations (checked by [`Filter::parse_with_segments`]).
//!
//! `and`/`or` chains are n-ary nodes (`a or b or c` is one `Or` of three),
//! so a long flat chain is a wide tree, not a deep one.
//!
//! # Type rules (checked by [`Filter::parse`])
//!
//! - Fields per kind: users have email, first_name, last_name, external_id,
//!   created_at, last_seen_at; accounts have name, external_id, created_at,
//!   last_activity_at.
//! - Text fields (email, first_name, last_name, name, external_id) compare
//!   with strings only. Date fields (created_at, last_seen_at,
//!   last_activity_at) compare with `now`, `now ± DURATION`, or a string
//!   holding an RFC 3339 date-time or a bare date (`"2024-05-01"`, midnight
//!   UTC), see [`parse_date`]. `contains`/`starts_with` need a text field
//!   or an attribute.
//! - Attributes compare with a string, a number, `true` or `false`
//!   (`true`/`false` only with `=` and `!=`), or with `now ± DURATION`
//!   (`attr.renewal_date < now + 90d`).
//! - `account.` only in user filters, `any_user(...)` only in account
//!   filters; inside them the other kind's rules apply.
//! - [`Filter::parse_with_segments`] also resolves `in_segment` names: the
//!   segment must exist, be of the kind in force where it is named, and must
//!   not lead back to the segment being defined or into any other cycle,
//!   and chains of segments are at most [`MAX_SEGMENT_DEPTH`] long.
//!   [`Filter::parse`] leaves names unresolved (for re-reading stored filters).
//!
//! # Semantics (the SQL compiler must match these exactly)
//!
//! - Two-valued logic. A comparison, `contains` or `starts_with` whose
//!   left side is null or absent is **false**, whatever the operator
//!   (including `!=`); `not` negates plainly, so
//!   `not (last_seen_at < now - 30d)` includes users never seen.
//!   In SQL: wrap each predicate as `COALESCE(pred, FALSE)` (or add
//!   `col IS NOT NULL AND ...`) before `NOT`.
//! - `is null` is true when the field is null; for an attribute, when the key
//!   is absent or holds JSON `null`. `is not null` is its negation.
//! - Text `=`, `!=`, `<`, ... compare exact bytes of the UTF-8 strings
//!   (case-sensitive; SQLite's BINARY collation, PostgreSQL `COLLATE "C"`).
//! - `contains` / `starts_with` are case-insensitive: both sides go through
//!   Rust's `str::to_lowercase` (full Unicode), then substring / prefix test
//!   on the result; an empty needle matches every non-null value. (SQLite's
//!   `lower()` folds ASCII only: the compiler must fold in Rust or register a
//!   function; `LIKE` patterns must escape `%`, `_` and the escape character.)
//! - Date comparisons compare instants exactly (sub-second precision kept);
//!   `now ± DURATION` is `now ± amount × (60 | 3600 | 86400 | 604800)`
//!   seconds, saturating at the ends of chrono's range.
//! - `attr.NAME OP VALUE` with the attribute's JSON value `j`:
//!   number `j` and NUMBER → compare as f64 (`j.as_f64()`); string `j` and
//!   STRING → byte comparison as above; bool `j` and `true`/`false` →
//!   equality; every other combination (JSON string vs number literal,
//!   numeric string, arrays, objects, null, absent) → **false**, for every
//!   operator including `!=`. `attr.NAME OP now ± DURATION`: `j` must be a
//!   string `"YYYY-MM-DD"` naming a real date of the years 0001 to 9999
//!   ([`attr_date`]); its midnight UTC is compared with the instant; any
//!   other value → false. `attr.NAME contains/starts_with` → false
//!   unless `j` is a string.
//! - `tagged(p)`: some tag name matches pattern `p` (`crate::tags::pattern`:
//!   exact, `a/*` strict descendants, `Key: *` any value of Key).
//!   `tagged_any(p, ...)`: some pattern matches some tag. `tagged_all(p, ...)`:
//!   every pattern matches some tag (not necessarily the same one).
//! - `events(name, d) OP n`: the number of the subject's own events whose
//!   name equals `name` exactly and whose time `at >= now - d` (no upper
//!   bound: events stamped in the future count), compared with `n`.
//! - `active_days(d) OP n`: the number of distinct UTC calendar dates among the
//!   subject's events (any name) with `at >= now - d`, compared with `n`.
//! - `in_segment("S")`: S's filter evaluated on the same subject (and for a
//!   user, the same account). Unknown segment, a segment of the other kind,
//!   or a cycle met at evaluation time → false.
//! - `account.P` (user): P holds for the user's account; false when the user
//!   has none. Inside `any_user(...)` the user's account is the account
//!   being evaluated.
//! - `any_user(E)` (account): some user of the account satisfies E; false
//!   when it has no users.

mod ast;
mod check;
mod eval;
mod lexer;
#[cfg(test)]
pub(crate) mod limits;
mod parser;
mod printer;
mod reach;
mod rewrite;
#[cfg(test)]
pub(crate) mod strategy;

use std::fmt;
use std::ops::Range;

pub use ast::{
    CompareOp, Duration, DurationUnit, Expr, Field, FieldType, Predicate, Target, TextOp, Value,
    attr_date, parse_date,
};
pub use eval::{SubjectData, Trace, evaluate, explain};
pub use reach::Reach;
pub use rewrite::Rewrite;

/// The deepest nesting of parentheses, `not`, `account.` and `any_user` accepted.
pub const MAX_DEPTH: usize = 64;

/// The most terms (predicates; each pattern of `tagged_any`/`tagged_all`
/// counting as one) one filter text may hold. Keeps the SQL a filter
/// compiles to well under SQLite's expression-depth (1000) and bound
/// variable limits, and every pass over the tree cheap.
pub const MAX_TERMS: usize = 200;

/// The deepest nesting of `account.` and `any_user(...)` within one
/// another (across segments too). Each is a correlated subquery, which
/// costs SQLite about 20 levels of its 1000-deep expression limit.
pub const MAX_RELATION_DEPTH: usize = 8;

/// The most tag patterns one `tagged_any` or `tagged_all` takes.
pub const MAX_ARGS: usize = 100;

/// The most terms a filter may have once every `in_segment` is replaced by
/// the named segment's filter, repeats counted (a segment naming another
/// twice counts its terms twice).
pub const MAX_EXPANDED_TERMS: usize = 1000;

/// The most diagnostics reported for one filter; the rest are counted
/// (locating each costs a pass over the text before it).
pub const MAX_DIAGNOSTICS: usize = 20;

/// The longest chain of segments naming segments through `in_segment`
/// (`A` names `B`, which names `C`: 3) that the check accepts; the evaluator
/// answers false past it.
pub const MAX_SEGMENT_DEPTH: usize = 16;

/// What a filter selects: accounts (companies) or users (contacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Account,
    User,
}

impl SubjectKind {
    /// `"accounts"` or `"users"`, as messages say it.
    pub fn plural(self) -> &'static str {
        match self {
            SubjectKind::Account => "accounts",
            SubjectKind::User => "users",
        }
    }
}

/// A parsed, type-checked filter for one kind of subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    kind: SubjectKind,
    root: Expr,
}

/// Finds a saved segment's filter by segment name.
pub type SegmentLookup<'a> = &'a dyn Fn(&str) -> Option<Filter>;

impl Filter {
    /// Parses and type-checks `text` as a filter on subjects of `kind`.
    /// `in_segment` names are not resolved (see [`Filter::parse_with_segments`]).
    /// On error, returns every diagnostic found, in source order.
    pub fn parse(text: &str, kind: SubjectKind) -> Result<Filter, Vec<Diagnostic>> {
        let parsed = parser::parse(text, kind);
        Self::finish(text, kind, parsed.root, parsed.diagnostics)
    }

    /// Like [`Filter::parse`], and resolves `in_segment` names through
    /// `lookup`: rejects unknown segments, segments of the wrong kind and
    /// cycles. `segment_name` is the name of the segment being defined (so
    /// that naming itself, directly or through others, is a cycle), or `None`
    /// for an unsaved filter.
    pub fn parse_with_segments(
        text: &str,
        kind: SubjectKind,
        segment_name: Option<&str>,
        lookup: SegmentLookup<'_>,
    ) -> Result<Filter, Vec<Diagnostic>> {
        let mut parsed = parser::parse(text, kind);
        let problems = check::segment_refs(&parsed.segment_refs, segment_name, lookup);
        if problems.is_empty() && parsed.diagnostics.is_empty() {
            parsed
                .diagnostics
                .extend(check::expansion(&parsed.segment_refs, parsed.terms, lookup));
        }
        parsed.diagnostics.extend(problems);
        parsed.diagnostics.sort_by_key(|(span, _)| span.start);
        Self::finish(text, kind, parsed.root, parsed.diagnostics)
    }

    fn finish(
        text: &str,
        kind: SubjectKind,
        root: Option<Expr>,
        diagnostics: Vec<lexer::RawDiagnostic>,
    ) -> Result<Filter, Vec<Diagnostic>> {
        match root {
            Some(root) if diagnostics.is_empty() => Ok(Filter { kind, root }),
            _ => {
                let mut shown: Vec<Diagnostic> = diagnostics
                    .iter()
                    .take(MAX_DIAGNOSTICS)
                    .map(|(span, message)| Diagnostic::new(text, span.clone(), message.clone()))
                    .collect();
                if let Some((span, _)) = diagnostics.get(MAX_DIAGNOSTICS) {
                    let more = diagnostics.len() - MAX_DIAGNOSTICS;
                    let message = format!("and {more} more problems");
                    shown.push(Diagnostic::new(text, span.clone(), message));
                }
                Err(shown)
            }
        }
    }

    pub fn kind(&self) -> SubjectKind {
        self.kind
    }

    pub fn root(&self) -> &Expr {
        &self.root
    }

    /// What is wrong with this filter once every `in_segment` is replaced
    /// through `lookup` by the named segment's filter (repeats counted):
    /// more than [`MAX_EXPANDED_TERMS`] terms, [`MAX_DEPTH`] levels or
    /// [`MAX_RELATION_DEPTH`] relations; `None` when within the limits.
    /// [`Filter::parse_with_segments`] checks this for new filters; this is
    /// for filters stored before the limits, or whose segments changed.
    pub fn expansion_problem(&self, lookup: SegmentLookup<'_>) -> Option<String> {
        check::expansion_of(&self.root, lookup)
    }

    /// The segments among `names` that, expanded through `lookup`, break
    /// the limits of [`Filter::expansion_problem`], each with its problem.
    pub fn oversized_segments<'n>(
        names: impl Iterator<Item = &'n str>,
        lookup: SegmentLookup<'_>,
    ) -> Vec<(String, String)> {
        check::oversized(names, lookup)
    }

    /// Names of the segments this filter names through `in_segment` (also
    /// inside `account.` and `any_user`), first occurrence order, without
    /// duplicates: for dependency tracking.
    pub fn segment_refs(&self) -> Vec<String> {
        let mut names = Vec::new();
        check::collect_segment_refs(&self.root, &mut names);
        names
    }
}

/// A problem in filter text, located for people (line and column) and for
/// tools (byte span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
    /// Byte offsets into the filter text.
    pub span: Range<usize>,
}

impl Diagnostic {
    fn new(text: &str, span: Range<usize>, message: String) -> Diagnostic {
        let start = floor_char_boundary(text, span.start);
        let before = &text[..start];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        Diagnostic {
            message,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            span,
        }
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for Diagnostic {}

//! The SQL compiler of the filter language: turns a [`Filter`] into a SeaQuery
//! statement that selects the ids of the matching subjects of one workspace,
//! on SQLite and PostgreSQL alike. Pure: it builds a query value and never
//! runs it; every piece of user text (names, needles, attribute keys, dates)
//! travels as a bound parameter.
//!
//! It gives the same answers as [`evaluate`](super::filter::evaluate) (the
//! semantics are in the docs of [`super::filter`]); a property test runs both
//! on random data and random filters. Every predicate compiles to an
//! expression that is never NULL (a comparison on a missing value is FALSE),
//! so `NOT` negates plainly, as the two-valued semantics ask.
//!
//! # The mapping (`s` is the subject's alias, `?` a bound parameter)
//!
//! - `tagged(p)`, `tagged_any(p, ...)`: `s.id IN (SELECT ta.subject_id FROM
//!   tag_assignments ta JOIN tags t ON t.id = ta.tag_id WHERE t.workspace_id
//!   = ? AND t.deleted_at IS NULL AND ta.subject_kind = 'USER' AND (p1 OR ...))`,
//!   a pattern being `t.name = ?`; `a/*`: `substr(t.name, 1, n) = ? AND
//!   length(t.name) > n`; `Key: *`: `substr(t.name, 1, n) = ?` (the name's
//!   prefix, as the evaluator reads it, not the `key` column, which is
//!   trimmed). `tagged_all`: one `IN` per pattern.
//! - Text fields: `s.col IS NOT NULL AND s.col < ?`; on PostgreSQL ordering
//!   operators compare `s.col COLLATE "C"` (bytes, like SQLite's BINARY).
//! - `contains` / `starts_with`: the needle is lowered in Rust; SQLite
//!   `instr(lower(s.col), ?) > 0` (`= 1` for a prefix), PostgreSQL
//!   `lower(s.col) LIKE ? ESCAPE '\'` with `%`, `_` and `\` escaped. Only
//!   ASCII letters fold alike everywhere: SQLite's `lower()` folds ASCII
//!   only, so a value with non-ASCII capitals (`É`) may not match on SQLite
//!   where the evaluator (full Unicode `to_lowercase`) says it does.
//! - Date fields: `s.col < ?` with the instant bound. SQLite stores
//!   timestamps as RFC 3339 text in UTC as sqlx writes them and compares
//!   text, which orders like the instants for years 0000 to 9999;
//!   PostgreSQL keeps microseconds, so an instant with finer digits is
//!   rounded to the neighbouring microsecond that keeps the answer exact.
//! - `attr.x`: SQLite `json_type(s.attributes, ?)` / `json_extract(...)`
//!   with the path `$."x"` (JSON-escaped, bound); PostgreSQL
//!   `jsonb_typeof(s.attributes -> ?)` / `s.attributes ->> ?` with the key
//!   bound. A comparison is `CASE WHEN <type matches> THEN <compare> ELSE
//!   FALSE END`, numbers compared as `REAL` / `double precision` (f64).
//! - `events(name, d) OP n`: `(SELECT COUNT(*) FROM events e WHERE
//!   e.subject_kind = 'USER' AND e.subject_id = s.id AND e.name = ? AND
//!   e.at >= ?) OP ?`; counts that only ask "any?" or "none?" become
//!   `EXISTS` / `NOT EXISTS`, and `>= 0` / `< 0` constants. `active_days`:
//!   `COUNT(DISTINCT <day>)`, the day being `substr(e.at, 1, 10)` on SQLite
//!   and `CAST(timezone('UTC', e.at) AS date)` on PostgreSQL.
//! - `account.P`: `EXISTS (SELECT 1 FROM accounts a WHERE a.id = s.account_id
//!   AND a.workspace_id = ? AND P(a))`; inside `any_user` it reads the
//!   account being evaluated directly.
//! - `any_user(E)`: `EXISTS (SELECT 1 FROM users u WHERE u.account_id = s.id
//!   AND u.workspace_id = ? AND E(u))`.
//! - `in_segment("S")`: S's filter inlined on the same subject; FALSE when
//!   S is unknown, of the other kind, part of a cycle or more than
//!   [`MAX_SEGMENT_DEPTH`] deep, as in the evaluator.
//!
//! # Limits
//!
//! - Case folding in `contains` / `starts_with` agrees only for ASCII
//!   letters on SQLite (see above).
//! - Attribute names with `"`, `\` or control characters need a SQLite that
//!   reads escapes in quoted JSON path labels (the 3.51 that sqlx bundles
//!   does; versions before the 3.45 JSON rewrite may not).
//! - Timestamps as sqlx writes them (RFC 3339, UTC, years 0000 to 9999).
//! - `in_segment` is inlined: a chain of segments that each name the next
//!   several times grows the statement exponentially (as it grows the
//!   evaluator's work); chains are at most [`MAX_SEGMENT_DEPTH`] long.
//!
//! Indexes used: `tags_workspace_name`, `tag_assignments_tag_subject`,
//! `events (subject_kind, subject_id, name, at)`, `users_account`, the
//! accounts primary key.

mod tags;
mod typed;

#[cfg(test)]
mod agreement;
#[cfg(test)]
mod limits;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, JoinType, Query, SelectStatement};

use super::filter::{
    CompareOp, Duration, Expr as FilterExpr, Filter, MAX_SEGMENT_DEPTH, Predicate, SegmentLookup,
    SubjectKind,
};

/// The database the statement is built for (it picks JSON, date and
/// collation syntax; build the statement with the matching query builder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a filter is compiled against.
#[derive(Clone, Copy)]
pub struct SqlContext<'a> {
    /// Only subjects of this workspace are selected.
    pub workspace_id: i64,
    /// The evaluation instant (`now` in filters, the start of `events` windows).
    pub now: DateTime<Utc>,
    pub backend: Backend,
    /// Finds the filter of a segment named by `in_segment`.
    pub segments: SegmentLookup<'a>,
}

/// `SELECT s.id FROM users s WHERE s.workspace_id = ? AND <filter>` (or
/// `accounts`, after the filter's kind): the ids, in one column `id`, of the
/// workspace's subjects that match. Callers may add ordering, paging or
/// further conditions on alias `s`.
pub fn select_ids(filter: &Filter, ctx: &SqlContext<'_>) -> SelectStatement {
    const ALIAS: &str = "s";
    Query::select()
        .column((Alias::new(ALIAS), Alias::new("id")))
        .from_as(Alias::new(table(filter.kind())), Alias::new(ALIAS))
        .and_where(column(ALIAS, "workspace_id").eq(ctx.workspace_id))
        .and_where(condition(filter, ALIAS, ctx))
        .to_owned()
}

/// The filter as a condition (never NULL) over a row of `users` or
/// `accounts` (after the filter's kind) aliased `alias`, for use in other
/// statements (counts, bulk targets). It does not restrict `alias` to the
/// workspace: the caller does. Subqueries use aliases starting with `f_`.
pub fn condition(filter: &Filter, alias: &str, ctx: &SqlContext<'_>) -> Expr {
    let mut compiler = Compiler {
        ctx,
        aliases: 0,
        evaluating: Vec::new(),
        sublinks: 0,
    };
    let scope = Scope {
        kind: filter.kind(),
        alias,
        account: AccountRef::for_kind(filter.kind()),
    };
    compiler.expr(filter.root(), scope)
}

/// A subject row in the statement being built.
#[derive(Clone, Copy)]
struct Scope<'s> {
    kind: SubjectKind,
    alias: &'s str,
    /// Where `account.` finds the account.
    account: AccountRef<'s>,
}

#[derive(Clone, Copy)]
enum AccountRef<'s> {
    /// Accounts, and `account.` inside `account.`: no account.
    None,
    /// A user on its own: the row of `accounts` that `account_id` names.
    ByColumn,
    /// A user inside `any_user`: the account being evaluated, by alias.
    Alias(&'s str),
}

impl AccountRef<'_> {
    fn for_kind(kind: SubjectKind) -> Self {
        match kind {
            SubjectKind::User => AccountRef::ByColumn,
            SubjectKind::Account => AccountRef::None,
        }
    }
}

impl Scope<'_> {
    fn column(&self, name: &str) -> Expr {
        column(self.alias, name)
    }
}

struct Compiler<'c, 'a> {
    ctx: &'c SqlContext<'a>,
    /// Subquery aliases handed out so far.
    aliases: usize,
    /// Segments being inlined, innermost last: guards against cycles.
    evaluating: Vec<String>,
    /// `IN (SELECT ...)` and `EXISTS` conditions built so far.
    sublinks: usize,
}

/// How many `IN`/`EXISTS` subqueries of one statement PostgreSQL may turn
/// into (semi- and anti-) joins. It pulls every such subquery under a chain
/// of `AND`s up into the join tree, and its planning time grows about
/// with the cube of their count (all the `s.id = ta.subject_id` join
/// clauses fall in one equivalence class): 40 `tagged(...)` joined by `and`
/// plan in 0.3 s, 80 in 3.7 s, 200 in over 2 minutes, on an empty
/// database. Past this many, a subquery is written `(... ) IS TRUE`, which
/// PostgreSQL does not pull up: it runs it as a (hashed, for `tagged`)
/// subplan. The value is the same: these conditions are never NULL.
const PULLED_UP_SUBQUERIES: usize = 8;

impl Compiler<'_, '_> {
    /// `condition`, an `IN (SELECT ...)` or `[NOT] EXISTS`, as written into
    /// the statement: see [`PULLED_UP_SUBQUERIES`].
    fn sublink(&mut self, condition: Expr) -> Expr {
        self.sublinks += 1;
        if self.ctx.backend == Backend::Postgres && self.sublinks > PULLED_UP_SUBQUERIES {
            condition.is(constant(true))
        } else {
            condition
        }
    }

    /// A fresh alias for a subquery table, `f_<n>_<stem>`.
    fn alias(&mut self, stem: &str) -> String {
        self.aliases += 1;
        format!("f_{}_{stem}", self.aliases)
    }

    fn expr(&mut self, expr: &FilterExpr, scope: Scope<'_>) -> Expr {
        match expr {
            FilterExpr::Or(operands) => {
                let parts: Vec<Expr> = operands.iter().map(|e| self.expr(e, scope)).collect();
                any(parts)
            }
            FilterExpr::And(operands) => {
                let parts: Vec<Expr> = operands.iter().map(|e| self.expr(e, scope)).collect();
                all(parts)
            }
            FilterExpr::Not(operand) => self.expr(operand, scope).not(),
            FilterExpr::Predicate(predicate) => self.predicate(predicate, scope),
        }
    }

    fn predicate(&mut self, predicate: &Predicate, scope: Scope<'_>) -> Expr {
        let typed = typed::Typed {
            backend: self.ctx.backend,
            now: self.ctx.now,
        };
        match predicate {
            Predicate::Tagged(pattern) => self.tagged(scope, std::slice::from_ref(pattern)),
            Predicate::TaggedAny(patterns) => self.tagged(scope, patterns),
            Predicate::TaggedAll(patterns) => {
                let parts: Vec<Expr> = patterns
                    .iter()
                    .map(|pattern| self.tagged(scope, std::slice::from_ref(pattern)))
                    .collect();
                all(parts)
            }
            Predicate::Compare { target, op, value } => {
                typed.compare(scope.kind, scope.alias, target, *op, value)
            }
            Predicate::IsNull { target, negated } => {
                typed.is_null(scope.kind, scope.alias, target, *negated)
            }
            Predicate::Text { target, op, needle } => {
                typed.text(scope.kind, scope.alias, target, *op, needle)
            }
            Predicate::Events {
                name,
                within,
                op,
                count,
            } => self.events(scope, Some(name), *within, *op, *count),
            Predicate::ActiveDays { within, op, count } => {
                self.events(scope, None, *within, *op, *count)
            }
            Predicate::InSegment(name) => self.in_segment(name, scope),
            Predicate::Account(inner) => self.account(inner, scope),
            Predicate::AnyUser(inner) => self.any_user(inner, scope),
        }
    }

    /// Some tag of the subject matches one of `patterns`.
    fn tagged(&mut self, scope: Scope<'_>, patterns: &[String]) -> Expr {
        let tag = self.alias("t");
        let assignment = self.alias("ta");
        let backend = self.ctx.backend;
        let matches: Vec<Expr> = patterns
            .iter()
            .filter_map(|pattern| tags::name_matches(backend, &tag, pattern))
            .collect();
        if matches.is_empty() {
            return false_();
        }
        let subjects = Query::select()
            .column((Alias::new(&assignment), Alias::new("subject_id")))
            .from_as(Alias::new("tag_assignments"), Alias::new(&assignment))
            .join_as(
                JoinType::InnerJoin,
                Alias::new("tags"),
                Alias::new(&tag),
                column(&tag, "id").eq(column(&assignment, "tag_id")),
            )
            .and_where(column(&tag, "workspace_id").eq(self.ctx.workspace_id))
            .and_where(column(&tag, "deleted_at").is_null())
            .and_where(column(&assignment, "subject_kind").eq(kind_constant(scope.kind)))
            .and_where(any(matches))
            .to_owned();
        self.sublink(scope.column("id").in_subquery(subjects))
    }

    /// `events(name, within) OP count`, or `active_days(within) OP count`
    /// when `name` is `None`.
    fn events(
        &mut self,
        scope: Scope<'_>,
        name: Option<&str>,
        within: Duration,
        op: CompareOp,
        count: u32,
    ) -> Expr {
        let backend = self.ctx.backend;
        if name.is_some_and(|name| backend == Backend::Postgres && name.contains('\0')) {
            // PostgreSQL text holds no NUL: no event has this name.
            return constant(op.holds(0.cmp(&count)));
        }
        let events = self.alias("e");
        let since = typed::Typed {
            backend,
            now: self.ctx.now,
        }
        .at_or_after(column(&events, "at"), within.before(self.ctx.now));
        let mut found = Query::select();
        found
            .from_as(Alias::new("events"), Alias::new(&events))
            .and_where(column(&events, "subject_kind").eq(kind_constant(scope.kind)))
            .and_where(column(&events, "subject_id").eq(scope.column("id")));
        if let Some(name) = name {
            found.and_where(column(&events, "name").eq(name));
        }
        found.and_where(since);
        match (op, count) {
            (CompareOp::Ge, 0) => constant(true),
            (CompareOp::Lt, 0) => constant(false),
            (CompareOp::Ge, 1) | (CompareOp::Gt, 0) | (CompareOp::Ne, 0) => self.sublink(
                Expr::exists(found.expr(Expr::Constant(1i32.into())).to_owned()),
            ),
            (CompareOp::Eq, 0) | (CompareOp::Lt, 1) | (CompareOp::Le, 0) => self.sublink(
                Expr::not_exists(found.expr(Expr::Constant(1i32.into())).to_owned()),
            ),
            _ => {
                let counted = match name {
                    Some(_) => Func::count(Expr::cust("*")),
                    None => Func::count_distinct(day(backend, column(&events, "at"))),
                };
                let found = Expr::SubQuery(None, Box::new(found.expr(counted).to_owned().into()));
                compare(found, op, Expr::val(i64::from(count)))
            }
        }
    }

    fn in_segment(&mut self, name: &str, scope: Scope<'_>) -> Expr {
        if self.evaluating.len() >= MAX_SEGMENT_DEPTH
            || self.evaluating.iter().any(|seen| seen == name)
        {
            return false_();
        }
        let Some(filter) = (self.ctx.segments)(name) else {
            return false_();
        };
        if filter.kind() != scope.kind {
            return false_();
        }
        self.evaluating.push(name.to_owned());
        let inlined = self.expr(filter.root(), scope);
        self.evaluating.pop();
        inlined
    }

    fn account(&mut self, inner: &Predicate, scope: Scope<'_>) -> Expr {
        match scope.account {
            AccountRef::None => false_(),
            AccountRef::Alias(account) => {
                let at = Scope {
                    kind: SubjectKind::Account,
                    alias: account,
                    account: AccountRef::None,
                };
                self.predicate(inner, at)
            }
            AccountRef::ByColumn => {
                let account = self.alias("a");
                let at = Scope {
                    kind: SubjectKind::Account,
                    alias: &account,
                    account: AccountRef::None,
                };
                let holds = self.predicate(inner, at);
                let exists = Expr::exists(
                    Query::select()
                        .expr(Expr::Constant(1i32.into()))
                        .from_as(Alias::new("accounts"), Alias::new(&account))
                        .and_where(column(&account, "id").eq(scope.column("account_id")))
                        .and_where(column(&account, "workspace_id").eq(self.ctx.workspace_id))
                        .and_where(holds)
                        .to_owned(),
                );
                self.sublink(exists)
            }
        }
    }

    fn any_user(&mut self, inner: &FilterExpr, scope: Scope<'_>) -> Expr {
        if scope.kind != SubjectKind::Account {
            return false_();
        }
        let user = self.alias("u");
        let at = Scope {
            kind: SubjectKind::User,
            alias: &user,
            account: AccountRef::Alias(scope.alias),
        };
        let holds = self.expr(inner, at);
        let exists = Expr::exists(
            Query::select()
                .expr(Expr::Constant(1i32.into()))
                .from_as(Alias::new("users"), Alias::new(&user))
                .and_where(column(&user, "account_id").eq(scope.column("id")))
                .and_where(column(&user, "workspace_id").eq(self.ctx.workspace_id))
                .and_where(holds)
                .to_owned(),
        );
        self.sublink(exists)
    }
}

/// The UTC calendar date of an event time.
fn day(backend: Backend, at: Expr) -> Expr {
    match backend {
        // RFC 3339 text in UTC: the date is its first 10 characters
        Backend::Sqlite => Func::cust("substr")
            .arg(at)
            .arg(Expr::Constant(1i32.into()))
            .arg(Expr::Constant(10i32.into()))
            .into(),
        Backend::Postgres => Func::cast_as(
            Func::cust("timezone")
                .arg(Expr::Constant("UTC".into()))
                .arg(at),
            Alias::new("date"),
        )
        .into(),
    }
}

fn table(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::User => "users",
        SubjectKind::Account => "accounts",
    }
}

/// The `subject_kind` stored in `tag_assignments` and `events`.
fn kind_constant(kind: SubjectKind) -> Expr {
    Expr::Constant(
        match kind {
            SubjectKind::User => "USER",
            SubjectKind::Account => "ACCOUNT",
        }
        .into(),
    )
}

fn column(alias: &str, name: &str) -> Expr {
    Expr::col((Alias::new(alias), Alias::new(name)))
}

/// `left OP right`.
fn compare(left: Expr, op: CompareOp, right: Expr) -> Expr {
    match op {
        CompareOp::Eq => left.eq(right),
        CompareOp::Ne => left.ne(right),
        CompareOp::Lt => left.lt(right),
        CompareOp::Le => left.lte(right),
        CompareOp::Gt => left.gt(right),
        CompareOp::Ge => left.gte(right),
    }
}

/// `TRUE` or `FALSE`, written out (not bound).
fn constant(value: bool) -> Expr {
    Expr::Constant(value.into())
}

fn false_() -> Expr {
    constant(false)
}

/// `a OR b OR ...`; FALSE for none. A balanced tree, not a left-deep
/// chain: the statement's nesting (which SeaQuery walks recursively and
/// SQLite bounds at 1000) grows with the log of the operands' count.
fn any(parts: Vec<Expr>) -> Expr {
    balanced(parts, |a, b| a.or(b)).unwrap_or_else(false_)
}

/// `a AND b AND ...`; TRUE for none. Balanced, as [`any`].
fn all(parts: Vec<Expr>) -> Expr {
    balanced(parts, |a, b| a.and(b)).unwrap_or_else(|| constant(true))
}

/// `parts` joined pairwise by `join`, round after round, into a tree of
/// depth ceil(log2(n)); the operands keep their order. No recursion.
fn balanced(mut parts: Vec<Expr>, join: fn(Expr, Expr) -> Expr) -> Option<Expr> {
    while parts.len() > 1 {
        let mut joined = Vec::with_capacity(parts.len().div_ceil(2));
        let mut pairs = parts.into_iter();
        while let Some(left) = pairs.next() {
            joined.push(match pairs.next() {
                Some(right) => join(left, right),
                None => left,
            });
        }
        parts = joined;
    }
    parts.pop()
}

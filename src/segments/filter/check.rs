//! Type rules and segment references. The parser calls [`predicate`],
//! [`account_prefix`] and [`any_user`] on each predicate it reads (it knows
//! the spans and the subject kind in force); [`segment_refs`] resolves
//! `in_segment` names once the whole filter is read.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::ast::{Expr, Field, FieldType, Predicate, Target, TextOp, Value};
use super::lexer::RawDiagnostic;
use super::{
    MAX_DEPTH, MAX_EXPANDED_TERMS, MAX_RELATION_DEPTH, MAX_SEGMENT_DEPTH, SegmentLookup,
    SubjectKind,
};

/// Which part of a predicate a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The field, `attr.NAME` or function name.
    Head,
    /// What follows: the operator and value.
    Value,
}

/// An `in_segment("name")` as written, with the subject kind in force there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SegmentRef {
    pub name: String,
    pub kind: SubjectKind,
    /// The span of the name string.
    pub span: Range<usize>,
    /// The parser's nesting depth where it is named.
    pub depth: usize,
    /// The nesting of `account.` and `any_user` where it is named.
    pub relations: usize,
}

/// The fields of `kind`, comma-separated, for messages.
pub(super) fn field_list(kind: SubjectKind) -> String {
    Field::for_kind(kind)
        .map(Field::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Problems with one predicate in a filter on `kind`. Shallow: the predicate
/// inside `account.` and the expression inside `any_user` are checked on
/// their own, with the other kind.
pub(super) fn predicate(predicate: &Predicate, kind: SubjectKind) -> Vec<(Part, String)> {
    let mut problems = Vec::new();
    match predicate {
        Predicate::Compare { target, op, value } => {
            if let Some(problem) = target_problem(target, kind) {
                problems.push((Part::Head, problem));
            } else if let Some(problem) = value_problem(target, op.is_equality(), value) {
                problems.push((Part::Value, problem));
            }
        }
        Predicate::IsNull { target, .. } => {
            problems.extend(target_problem(target, kind).map(|problem| (Part::Head, problem)));
        }
        Predicate::Text { target, op, .. } => {
            if let Some(problem) = target_problem(target, kind) {
                problems.push((Part::Head, problem));
            } else if let Target::Field(field) = target
                && field.field_type() == FieldType::Date
            {
                problems.push((Part::Head, text_on_date(*op, *field)));
            }
        }
        Predicate::Account(_) => {
            problems.extend(account_prefix(kind).map(|problem| (Part::Head, problem)));
        }
        Predicate::AnyUser(_) => {
            problems.extend(any_user(kind).map(|problem| (Part::Head, problem)));
        }
        Predicate::Tagged(_)
        | Predicate::TaggedAny(_)
        | Predicate::TaggedAll(_)
        | Predicate::Events { .. }
        | Predicate::ActiveDays { .. }
        | Predicate::InSegment(_) => {}
    }
    problems
}

/// The problem with `account.` in a filter on `kind`, if any.
pub(super) fn account_prefix(kind: SubjectKind) -> Option<String> {
    (kind != SubjectKind::User).then(|| "account.… is only allowed in user filters".to_string())
}

/// The problem with `any_user(…)` in a filter on `kind`, if any.
pub(super) fn any_user(kind: SubjectKind) -> Option<String> {
    (kind != SubjectKind::Account)
        .then(|| "any_user(…) is only allowed in account filters".to_string())
}

fn target_problem(target: &Target, kind: SubjectKind) -> Option<String> {
    match target {
        Target::Field(field) if !field.applies_to(kind) => Some(format!(
            "field {:?} is not available for {} (expected one of: {}, attr.NAME)",
            field.name(),
            kind.plural(),
            field_list(kind)
        )),
        _ => None,
    }
}

fn text_on_date(op: TextOp, field: Field) -> String {
    format!(
        "{} needs a text field or attribute, but {} is a date field",
        op.keyword(),
        field.name()
    )
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(_) => format!("the string {value}"),
        Value::Number(_) => format!("the number {value}"),
        _ => value.to_string(),
    }
}

const RFC_3339_EXAMPLES: &str =
    r#"an RFC 3339 date such as "2024-05-01" or "2024-05-01T09:30:00Z""#;
const DATE_VALUES: &str =
    r#"now, now - DURATION, now + DURATION or a date string such as "2024-05-01""#;

fn value_problem(target: &Target, equality: bool, value: &Value) -> Option<String> {
    let found = describe(value);
    match target {
        Target::Field(field) => match (field.field_type(), value) {
            (FieldType::Text, Value::String(_)) => None,
            (FieldType::Text, _) => Some(format!(
                "{} is a text field: expected a string but found {found}",
                field.name()
            )),
            (FieldType::Date, Value::Now | Value::NowMinus(_) | Value::NowPlus(_)) => None,
            (FieldType::Date, Value::String(text)) => {
                super::ast::parse_date(text).is_none().then(|| {
                    format!(
                        "invalid date {value} for {}: expected {RFC_3339_EXAMPLES}",
                        field.name()
                    )
                })
            }
            (FieldType::Date, _) => Some(format!(
                "{} is a date field: expected {DATE_VALUES} but found {found}",
                field.name()
            )),
        },
        Target::Attr(_) => match value {
            Value::Bool(_) if !equality => Some(format!("{found} compares only with = or !=")),
            _ => None,
        },
    }
}

/// Resolves every `in_segment` reference: the segment must exist, be of the
/// kind in force where it is named, and lead to no cycle (through `own`, the
/// segment being defined, or any other). Nesting deeper than [`MAX_SEGMENT_DEPTH`]
/// segments is rejected too.
pub(super) fn segment_refs(
    refs: &[SegmentRef],
    own: Option<&str>,
    lookup: SegmentLookup<'_>,
) -> Vec<RawDiagnostic> {
    let mut search = CycleSearch {
        lookup,
        refs: HashMap::new(),
        done: HashSet::new(),
    };
    let mut problems = Vec::new();
    for reference in refs {
        let name = reference.name.as_str();
        let mut path: Vec<String> = own.map(str::to_string).into_iter().collect();
        if own != Some(name) {
            match (search.lookup)(name) {
                None => {
                    problems.push((reference.span.clone(), format!("unknown segment {name:?}")));
                    continue;
                }
                Some(filter) if filter.kind() != reference.kind => {
                    problems.push((
                        reference.span.clone(),
                        format!(
                            "segment {name:?} selects {}, but here in_segment needs a segment of {}",
                            filter.kind().plural(),
                            reference.kind.plural()
                        ),
                    ));
                    continue;
                }
                Some(filter) => {
                    search.refs.insert(name.to_string(), filter.segment_refs());
                }
            }
        }
        let message = match search.find(name, &mut path) {
            Ok(()) => continue,
            Err(Found::Cycle(cycle)) => {
                let cycle = cycle
                    .iter()
                    .map(|name| format!("{name:?}"))
                    .collect::<Vec<_>>()
                    .join(" -> ");
                format!("in_segment({name:?}) makes a cycle: {cycle}")
            }
            Err(Found::TooDeep) => {
                format!("in_segment({name:?}) nests segments more than {MAX_SEGMENT_DEPTH} deep")
            }
        };
        problems.push((reference.span.clone(), message));
    }
    problems
}

enum Found {
    Cycle(Vec<String>),
    TooDeep,
}

/// Depth-first search through segment references. A segment in `done` was
/// fully explored without reaching a cycle (nor the segment being defined,
/// which starts every path), so it need not be explored again.
struct CycleSearch<'a> {
    lookup: SegmentLookup<'a>,
    refs: HashMap<String, Vec<String>>,
    done: HashSet<String>,
}

impl CycleSearch<'_> {
    fn find(&mut self, name: &str, path: &mut Vec<String>) -> Result<(), Found> {
        if let Some(start) = path.iter().position(|seen| seen == name) {
            let mut cycle = path[start..].to_vec();
            cycle.push(name.to_string());
            return Err(Found::Cycle(cycle));
        }
        if self.done.contains(name) {
            return Ok(());
        }
        if path.len() >= MAX_SEGMENT_DEPTH {
            return Err(Found::TooDeep);
        }
        let lookup = self.lookup;
        let refs = self
            .refs
            .entry(name.to_string())
            .or_insert_with(|| lookup(name).map(|f| f.segment_refs()).unwrap_or_default())
            .clone();
        path.push(name.to_string());
        for next in &refs {
            self.find(next, path)?;
        }
        path.pop();
        self.done.insert(name.to_string());
        Ok(())
    }
}

/// Checks the filter as it is once every `in_segment` is replaced by the
/// named segment's filter: at most [`MAX_EXPANDED_TERMS`] terms (repeats
/// counted) and [`MAX_DEPTH`] levels of nesting. `terms` is the count of
/// the filter's own terms (its `in_segment`s included), `refs` its
/// references in source order. Call it once [`segment_refs`] found no
/// problem (no unknown segment, no cycle). Reports the first reference
/// that breaks a limit.
pub(super) fn expansion(
    refs: &[SegmentRef],
    terms: usize,
    lookup: SegmentLookup<'_>,
) -> Option<RawDiagnostic> {
    let mut measure = Measure {
        lookup,
        sizes: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut total = terms.saturating_sub(refs.len());
    for reference in refs {
        let name = reference.name.as_str();
        let size = measure.segment(name);
        total = total.saturating_add(size.terms);
        if total > MAX_EXPANDED_TERMS {
            return Some((
                reference.span.clone(),
                format!(
                    "filter too large with its segments expanded: {total} terms or more at \
                     in_segment({name:?}), which brings {} (at most {MAX_EXPANDED_TERMS}; a \
                     segment named twice counts twice)",
                    size.terms
                ),
            ));
        }
        let relations = reference.relations.saturating_add(size.relations);
        if relations > MAX_RELATION_DEPTH {
            return Some((
                reference.span.clone(),
                format!(
                    "in_segment({name:?}) nests account. and any_user(…) too deeply once its \
                     segments are expanded (at most {MAX_RELATION_DEPTH} levels)"
                ),
            ));
        }
        let depth = reference.depth.saturating_add(size.depth);
        if depth > MAX_DEPTH {
            return Some((
                reference.span.clone(),
                format!(
                    "in_segment({name:?}) nests too deeply once its segments are expanded \
                     (at most {MAX_DEPTH} levels)"
                ),
            ));
        }
    }
    None
}

/// [`expansion`] for a whole filter: the problem, if any.
pub(super) fn expansion_of(root: &Expr, lookup: SegmentLookup<'_>) -> Option<String> {
    let mut measure = Measure {
        lookup,
        sizes: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut size = Size::default();
    measure.expr(root, 0, 0, &mut size);
    size.problem()
}

/// The named segments that break the expansion limits, with the problem;
/// one pass, each segment measured once.
pub(super) fn oversized<'n>(
    names: impl Iterator<Item = &'n str>,
    lookup: SegmentLookup<'_>,
) -> Vec<(String, String)> {
    let mut measure = Measure {
        lookup,
        sizes: HashMap::new(),
        visiting: Vec::new(),
    };
    names
        .filter_map(|name| Some((name.to_string(), measure.segment(name).problem()?)))
        .collect()
}

impl Size {
    fn problem(&self) -> Option<String> {
        if self.terms > MAX_EXPANDED_TERMS {
            Some(format!(
                "{} terms with its segments expanded, over the limit of {MAX_EXPANDED_TERMS}",
                self.terms
            ))
        } else if self.depth > MAX_DEPTH {
            Some(format!(
                "nested {} levels deep with its segments expanded (at most {MAX_DEPTH})",
                self.depth
            ))
        } else if self.relations > MAX_RELATION_DEPTH {
            Some(format!(
                "account. and any_user(…) nested {} levels deep with its segments expanded \
                 (at most {MAX_RELATION_DEPTH})",
                self.relations
            ))
        } else {
            None
        }
    }
}

/// The terms, nesting depth and relation depth of a filter with its
/// segments expanded.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Size {
    pub terms: usize,
    pub depth: usize,
    pub relations: usize,
}

/// Sizes of segments, memoized. Recursion is bounded: through segments by
/// [`MAX_SEGMENT_DEPTH`] (deeper, a cycle or an unknown name count as one
/// term, as the evaluator answers false there), within a filter by
/// [`MAX_DEPTH`] + 1 levels (past which the size is already too deep).
struct Measure<'a> {
    lookup: SegmentLookup<'a>,
    sizes: HashMap<String, Size>,
    visiting: Vec<String>,
}

impl Measure<'_> {
    fn segment(&mut self, name: &str) -> Size {
        if let Some(size) = self.sizes.get(name) {
            return *size;
        }
        let unresolved = Size {
            terms: 1,
            ..Size::default()
        };
        if self.visiting.len() >= MAX_SEGMENT_DEPTH || self.visiting.iter().any(|n| n == name) {
            return unresolved;
        }
        let Some(filter) = (self.lookup)(name) else {
            return unresolved;
        };
        self.visiting.push(name.to_string());
        let mut size = Size::default();
        self.expr(filter.root(), 0, 0, &mut size);
        self.visiting.pop();
        self.sizes.insert(name.to_string(), size);
        size
    }

    /// Adds `expr`, found at nesting `depth` within `relations` levels of
    /// `account.`/`any_user`, to `size`.
    fn expr(&mut self, expr: &Expr, depth: usize, relations: usize, size: &mut Size) {
        if depth > MAX_DEPTH {
            size.depth = size.depth.max(depth);
            size.terms = size.terms.saturating_add(1);
            return;
        }
        match expr {
            Expr::Or(operands) | Expr::And(operands) => {
                let or = matches!(expr, Expr::Or(_));
                for operand in operands {
                    // A nested group needs parentheses, except `and` in `or`.
                    let grouped = match operand {
                        Expr::Or(_) => true,
                        Expr::And(_) => !or,
                        _ => false,
                    };
                    self.expr(operand, depth + usize::from(grouped), relations, size);
                }
            }
            Expr::Not(operand) => {
                let grouped = matches!(**operand, Expr::Or(_) | Expr::And(_));
                self.expr(operand, depth + 1 + usize::from(grouped), relations, size);
            }
            Expr::Predicate(predicate) => self.predicate(predicate, depth, relations, size),
        }
    }

    fn predicate(
        &mut self,
        predicate: &Predicate,
        depth: usize,
        relations: usize,
        size: &mut Size,
    ) {
        size.depth = size.depth.max(depth);
        size.relations = size.relations.max(relations);
        match predicate {
            Predicate::InSegment(name) => {
                let inner = self.segment(name);
                size.terms = size.terms.saturating_add(inner.terms);
                size.depth = size.depth.max(depth.saturating_add(inner.depth));
                size.relations = size
                    .relations
                    .max(relations.saturating_add(inner.relations));
            }
            Predicate::TaggedAny(patterns) | Predicate::TaggedAll(patterns) => {
                size.terms = size.terms.saturating_add(patterns.len().max(1));
            }
            Predicate::Account(inner) => {
                size.terms = size.terms.saturating_add(1);
                if depth < MAX_DEPTH {
                    self.predicate(inner, depth + 1, relations + 1, size);
                } else {
                    size.depth = size.depth.max(depth + 1);
                }
            }
            Predicate::AnyUser(inner) => {
                size.terms = size.terms.saturating_add(1);
                self.expr(inner, depth + 1, relations + 1, size);
            }
            _ => size.terms = size.terms.saturating_add(1),
        }
    }
}

/// Appends the `in_segment` names in `expr` to `names`, skipping ones already there.
pub(super) fn collect_segment_refs(expr: &Expr, names: &mut Vec<String>) {
    match expr {
        Expr::Or(operands) | Expr::And(operands) => {
            for operand in operands {
                collect_segment_refs(operand, names);
            }
        }
        Expr::Not(operand) => collect_segment_refs(operand, names),
        Expr::Predicate(predicate) => collect_predicate_refs(predicate, names),
    }
}

fn collect_predicate_refs(predicate: &Predicate, names: &mut Vec<String>) {
    match predicate {
        Predicate::InSegment(name) if !names.contains(name) => names.push(name.clone()),
        Predicate::Account(inner) => collect_predicate_refs(inner, names),
        Predicate::AnyUser(inner) => collect_segment_refs(inner, names),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::super::{Filter, SubjectKind};

    fn render(result: Result<Filter, Vec<super::super::Diagnostic>>) -> String {
        match result {
            Ok(filter) => format!("{filter}\n"),
            Err(diagnostics) => diagnostics.iter().map(|d| format!("{d}\n")).collect(),
        }
    }

    /// Segments `Users` (user kind, refers to `Leaf`), `Leaf` (user), `Accounts`
    /// (account), and the cycle `Loop1` -> `Loop2` -> `Loop1`; `Self` names itself;
    /// `Outer` names `Users` and `Defined`; `UsersOfBig` names `BigAccounts`;
    /// `Chain1` names `Chain2`, which names `Chain3`, and so on forever.
    fn lookup(name: &str) -> Option<Filter> {
        let (text, kind) = match name {
            "Users" => (r#"in_segment("Leaf")"#, SubjectKind::User),
            "Leaf" => (r#"tagged("leaf")"#, SubjectKind::User),
            "Accounts" => (r#"tagged("big")"#, SubjectKind::Account),
            "Loop1" => (r#"in_segment("Loop2")"#, SubjectKind::User),
            "Loop2" => (r#"in_segment("Loop1")"#, SubjectKind::User),
            "Self" => (r#"in_segment("Self")"#, SubjectKind::User),
            "Outer" => (
                r#"in_segment("Users") or in_segment("Defined")"#,
                SubjectKind::User,
            ),
            "UsersOfBig" => (r#"account.in_segment("BigAccounts")"#, SubjectKind::User),
            chain if chain.starts_with("Chain") => {
                let next = chain[5..].parse::<u32>().ok()? + 1;
                return Filter::parse(&format!("in_segment(\"Chain{next}\")"), SubjectKind::User)
                    .ok();
            }
            _ => return None,
        };
        Filter::parse(text, kind).ok()
    }

    fn check_segments(input: &str, kind: SubjectKind, own: Option<&str>, expect: Expect) {
        expect.assert_eq(&render(Filter::parse_with_segments(
            input, kind, own, &lookup,
        )));
    }

    #[test]
    fn segment_references() {
        use SubjectKind::{Account, User};
        check_segments(
            r#"in_segment("Users") and in_segment("Leaf")"#,
            User,
            None,
            expect![[r#"
                in_segment("Users") and in_segment("Leaf")
            "#]],
        );
        check_segments(
            r#"in_segment("Nope")"#,
            User,
            None,
            expect![[r#"
                1:12: unknown segment "Nope"
            "#]],
        );
        check_segments(
            r#"in_segment("Accounts")"#,
            User,
            None,
            expect![[r#"
                1:12: segment "Accounts" selects accounts, but here in_segment needs a segment of users
            "#]],
        );
        check_segments(
            r#"account.in_segment("Accounts")"#,
            User,
            None,
            expect![[r#"
                account.in_segment("Accounts")
            "#]],
        );
        check_segments(
            r#"any_user(in_segment("Accounts"))"#,
            Account,
            None,
            expect![[r#"
                1:21: segment "Accounts" selects accounts, but here in_segment needs a segment of users
            "#]],
        );
        check_segments(
            r#"any_user(in_segment("Users"))"#,
            Account,
            None,
            expect![[r#"
                any_user(in_segment("Users"))
            "#]],
        );
    }

    #[test]
    fn segment_cycles() {
        use SubjectKind::User;
        check_segments(
            r#"in_segment("Defined")"#,
            User,
            Some("Defined"),
            expect![[r#"
                1:12: in_segment("Defined") makes a cycle: "Defined" -> "Defined"
            "#]],
        );
        check_segments(
            r#"tagged("x") or in_segment("Outer")"#,
            User,
            Some("Defined"),
            expect![[r#"
                1:27: in_segment("Outer") makes a cycle: "Defined" -> "Outer" -> "Defined"
            "#]],
        );
        check_segments(
            r#"in_segment("Outer")"#,
            User,
            Some("Other"),
            expect![[r#"
                in_segment("Outer")
            "#]],
        );
        check_segments(
            r#"any_user(in_segment("UsersOfBig"))"#,
            SubjectKind::Account,
            Some("BigAccounts"),
            expect![[r#"
                1:21: in_segment("UsersOfBig") makes a cycle: "BigAccounts" -> "UsersOfBig" -> "BigAccounts"
            "#]],
        );
        check_segments(
            r#"in_segment("Loop1")"#,
            User,
            None,
            expect![[r#"
                1:12: in_segment("Loop1") makes a cycle: "Loop1" -> "Loop2" -> "Loop1"
            "#]],
        );
        check_segments(
            r#"in_segment("Self") and emial = "x""#,
            User,
            Some("New"),
            expect![[r#"
                1:12: in_segment("Self") makes a cycle: "Self" -> "Self"
                1:24: unknown field "emial" for users (expected one of: email, first_name, last_name, external_id, created_at, last_seen_at, attr.NAME)
            "#]],
        );
    }

    #[test]
    fn segment_nesting_is_bounded() {
        check_segments(
            r#"in_segment("Chain1")"#,
            SubjectKind::User,
            None,
            expect![[r#"
                1:12: in_segment("Chain1") nests segments more than 16 deep
            "#]],
        );
    }
}

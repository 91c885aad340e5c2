//! Tag references in a filter: which patterns it holds, and the filter with
//! tag names replaced (a rename or a merge), through the tree and the
//! canonical printer, never the text.
//!
//! A pattern naming a renamed tag exactly (`tagged("Customer")`) takes the
//! new name; a descendants pattern of a renamed tag (`sports/*` when
//! `sports` becomes `athletics`) follows it (`athletics/*`, the same tags).
//! Any other pattern that selected an old name and does not select its new
//! name (`Region: *` when `Region: EU` becomes `Europe`) is kept as written
//! and reported: it is the writer's intent, which a rename cannot guess.

use super::Filter;
use super::ast::{Expr, Predicate};
use crate::tags::pattern::TagPattern;

/// What renaming tags did to one filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    /// The filter with the new names; `None` when nothing was rewritten.
    pub filter: Option<Filter>,
    /// Patterns kept as written that selected an old name and not its new one.
    pub kept: Vec<String>,
}

impl Filter {
    /// Every tag pattern the filter holds (also inside `account.` and
    /// `any_user`), in order, with repeats.
    pub fn tag_patterns(&self) -> Vec<&str> {
        let mut patterns = Vec::new();
        expr_patterns(self.root(), &mut patterns);
        patterns
    }

    /// Whether some pattern of the filter names the tag `name` itself
    /// (exactly, or as the root of `name/*`): deleting the tag would leave
    /// that part matching nothing.
    pub fn names_tag_itself(&self, name: &str) -> bool {
        self.tag_patterns()
            .iter()
            .any(|pattern| crate::tags::pattern::names_tag(pattern, name))
    }

    /// Whether some pattern of the filter selects the tag `name`.
    pub fn names_tag(&self, name: &str) -> bool {
        self.tag_patterns()
            .iter()
            .any(|pattern| TagPattern::parse(pattern).matches(name))
    }

    /// The filter with the tags `renames` (old name, new name) renamed.
    pub fn rename_tags(&self, renames: &[(String, String)]) -> Rewrite {
        let mut rewriter = Rewriter {
            renames,
            changed: false,
            kept: Vec::new(),
        };
        let root = rewriter.expr(self.root());
        Rewrite {
            filter: rewriter.changed.then(|| Filter {
                kind: self.kind(),
                root,
            }),
            kept: rewriter.kept,
        }
    }
}

fn expr_patterns<'a>(expr: &'a Expr, patterns: &mut Vec<&'a str>) {
    match expr {
        Expr::Or(operands) | Expr::And(operands) => {
            for operand in operands {
                expr_patterns(operand, patterns);
            }
        }
        Expr::Not(operand) => expr_patterns(operand, patterns),
        Expr::Predicate(predicate) => predicate_patterns(predicate, patterns),
    }
}

fn predicate_patterns<'a>(predicate: &'a Predicate, patterns: &mut Vec<&'a str>) {
    match predicate {
        Predicate::Tagged(pattern) => patterns.push(pattern),
        Predicate::TaggedAny(list) | Predicate::TaggedAll(list) => {
            patterns.extend(list.iter().map(String::as_str));
        }
        Predicate::Account(inner) => predicate_patterns(inner, patterns),
        Predicate::AnyUser(inner) => expr_patterns(inner, patterns),
        _ => {}
    }
}

struct Rewriter<'r> {
    renames: &'r [(String, String)],
    changed: bool,
    kept: Vec<String>,
}

impl Rewriter<'_> {
    fn new_name(&self, old: &str) -> Option<&str> {
        self.renames
            .iter()
            .find(|(from, _)| from == old)
            .map(|(_, to)| to.as_str())
    }

    fn pattern(&mut self, pattern: &str) -> String {
        let parsed = TagPattern::parse(pattern);
        let rewritten = match parsed {
            TagPattern::Exact(name) => self.new_name(name).map(str::to_owned),
            TagPattern::Descendants(prefix) => self
                .new_name(&prefix[..prefix.len() - 1])
                .map(|root| format!("{root}/*")),
            TagPattern::AnyValue(_) => None,
        };
        if let Some(rewritten) = rewritten {
            if rewritten != pattern {
                self.changed = true;
            }
            return rewritten;
        }
        let lost = self
            .renames
            .iter()
            .any(|(old, new)| parsed.matches(old) && !parsed.matches(new));
        if lost && !self.kept.iter().any(|k| k == pattern) {
            self.kept.push(pattern.to_owned());
        }
        pattern.to_owned()
    }

    /// The patterns of a list, rewritten, without the repeats a merge makes.
    fn patterns(&mut self, list: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for pattern in list {
            let rewritten = self.pattern(pattern);
            if !out.contains(&rewritten) {
                out.push(rewritten);
            }
        }
        out
    }

    fn expr(&mut self, expr: &Expr) -> Expr {
        match expr {
            Expr::Or(operands) => Expr::Or(operands.iter().map(|o| self.expr(o)).collect()),
            Expr::And(operands) => Expr::And(operands.iter().map(|o| self.expr(o)).collect()),
            Expr::Not(operand) => Expr::Not(Box::new(self.expr(operand))),
            Expr::Predicate(predicate) => Expr::Predicate(self.predicate(predicate)),
        }
    }

    fn predicate(&mut self, predicate: &Predicate) -> Predicate {
        match predicate {
            Predicate::Tagged(pattern) => Predicate::Tagged(self.pattern(pattern)),
            Predicate::TaggedAny(list) => Predicate::TaggedAny(self.patterns(list)),
            Predicate::TaggedAll(list) => Predicate::TaggedAll(self.patterns(list)),
            Predicate::Account(inner) => Predicate::Account(Box::new(self.predicate(inner))),
            Predicate::AnyUser(inner) => Predicate::AnyUser(Box::new(self.expr(inner))),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{Filter, SubjectKind};

    fn renames(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn rewrite(text: &str, pairs: &[(&str, &str)]) -> (String, Vec<String>) {
        let filter = Filter::parse(text, SubjectKind::User).expect("a valid filter");
        let rewrite = filter.rename_tags(&renames(pairs));
        let printed = rewrite.filter.as_ref().unwrap_or(&filter).to_string();
        (printed, rewrite.kept)
    }

    #[test]
    fn exact_names_follow_a_rename() {
        let (text, kept) = rewrite(
            r#"tagged("Customer") and not tagged_any("Customer", "Lead") or account.tagged("Customer")"#,
            &[("Customer", "Client")],
        );
        assert_eq!(
            text,
            r#"tagged("Client") and not tagged_any("Client", "Lead") or account.tagged("Client")"#
        );
        assert!(kept.is_empty());
    }

    #[test]
    fn a_hierarchy_rename_moves_descendants_and_their_patterns() {
        let pairs = [
            ("sports", "athletics"),
            ("sports/football", "athletics/football"),
        ];
        let (text, kept) = rewrite(
            r#"tagged("sports/*") or tagged("sports/football") or tagged("sports")"#,
            &pairs,
        );
        assert_eq!(
            text,
            r#"tagged("athletics/*") or tagged("athletics/football") or tagged("athletics")"#
        );
        assert!(kept.is_empty());
    }

    #[test]
    fn patterns_that_lose_the_tag_are_kept_and_reported() {
        let (text, kept) = rewrite(
            r#"tagged("Region: *") or tagged("sports/*") or tagged("Tier: *")"#,
            &[("Region: EU", "Europe"), ("sports/golf", "golf")],
        );
        assert_eq!(
            text,
            r#"tagged("Region: *") or tagged("sports/*") or tagged("Tier: *")"#
        );
        assert_eq!(kept, ["Region: *", "sports/*"]);
        // Still selected under the new name: nothing to report.
        let (_, kept) = rewrite(
            r#"tagged("Region: *")"#,
            &[("Region: EU", "Region: Europe")],
        );
        assert!(kept.is_empty());
    }

    #[test]
    fn a_merge_leaves_no_repeated_pattern() {
        let (text, _) = rewrite(
            r#"tagged_all("A", "B", "C") and tagged_any("A", "B")"#,
            &[("A", "C"), ("B", "C")],
        );
        assert_eq!(text, r#"tagged_all("C") and tagged_any("C")"#);
    }

    #[test]
    fn an_untouched_filter_is_not_rewritten() {
        let filter = Filter::parse(
            r#"tagged("VIP") and email contains "acme""#,
            SubjectKind::User,
        )
        .unwrap();
        let rewrite = filter.rename_tags(&renames(&[("Customer", "Client")]));
        assert_eq!(rewrite.filter, None);
        assert!(filter.names_tag("VIP") && !filter.names_tag("Customer"));
    }

    proptest! {
        /// A rewritten filter prints to text that parses back to it, and
        /// names the new tag wherever the old one was named exactly.
        #[test]
        fn rewritten_filters_round_trip(
            names in prop::collection::vec("[A-Za-z]{1,6}", 1..6),
            pick in 0usize..6,
            new in "[A-Za-z]{1,6}",
        ) {
            let old = names[pick % names.len()].clone();
            let text = names
                .iter()
                .map(|n| format!("tagged({n:?})"))
                .collect::<Vec<_>>()
                .join(" or ");
            let filter = Filter::parse(&text, SubjectKind::User).unwrap();
            let rewrite = filter.rename_tags(&[(old.clone(), new.clone())]);
            let result = rewrite.filter.unwrap_or(filter);
            let printed = result.to_string();
            let reparsed = Filter::parse(&printed, SubjectKind::User).unwrap();
            prop_assert_eq!(&reparsed, &result);
            prop_assert!(result.names_tag(&new));
            prop_assert!(old == new || !result.names_tag(&old));
        }
    }
}

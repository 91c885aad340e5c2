//! What a filter reads beyond the subject's own row and tags: the clock,
//! the user's account, the account's users, tracked events. Segment
//! membership uses it to know which subjects a change can move and which
//! segments the sweep must revisit as time passes.

use super::ast::{Expr, Predicate, Value};
use super::{Filter, SegmentLookup};

/// What a filter (with the segments it names) reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// `now` in a comparison, or an `events` / `active_days` window: the
    /// answer changes as time passes.
    pub clock: bool,
    /// `account.`: a change to the user's account can change the answer.
    pub account: bool,
    /// `any_user(...)`: a change to one of the account's users can.
    pub users: bool,
    /// The longest `events` / `active_days` window, in seconds.
    pub events_window: Option<i64>,
}

impl Reach {
    fn merge(&mut self, other: Reach) {
        self.clock |= other.clock;
        self.account |= other.account;
        self.users |= other.users;
        self.events_window = match (self.events_window, other.events_window) {
            (Some(a), Some(b)) => Some(Ord::max(a, b)),
            (a, b) => a.or(b),
        };
    }
}

impl Filter {
    /// What this filter reads, following `in_segment` through `lookup`
    /// (unknown segments and cycles read nothing).
    pub fn reach(&self, lookup: SegmentLookup<'_>) -> Reach {
        let mut walker = Walker {
            lookup,
            visiting: Vec::new(),
            reach: Reach::default(),
        };
        walker.expr(self.root());
        walker.reach
    }
}

struct Walker<'a> {
    lookup: SegmentLookup<'a>,
    visiting: Vec<String>,
    reach: Reach,
}

impl Walker<'_> {
    fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::Or(operands) | Expr::And(operands) => {
                for operand in operands {
                    self.expr(operand);
                }
            }
            Expr::Not(operand) => self.expr(operand),
            Expr::Predicate(predicate) => self.predicate(predicate),
        }
    }

    fn predicate(&mut self, predicate: &Predicate) {
        match predicate {
            Predicate::Compare { value, .. } => {
                if matches!(value, Value::Now | Value::NowMinus(_) | Value::NowPlus(_)) {
                    self.reach.clock = true;
                }
            }
            Predicate::Events { within, .. } | Predicate::ActiveDays { within, .. } => {
                self.reach.merge(Reach {
                    clock: true,
                    events_window: Some(within.seconds()),
                    ..Reach::default()
                });
            }
            Predicate::Account(inner) => {
                self.reach.account = true;
                self.predicate(inner);
            }
            Predicate::AnyUser(inner) => {
                self.reach.users = true;
                self.expr(inner);
            }
            Predicate::InSegment(name) => {
                if self.visiting.contains(name) {
                    return;
                }
                if let Some(filter) = (self.lookup)(name) {
                    self.visiting.push(name.clone());
                    self.expr(filter.root());
                    self.visiting.pop();
                }
            }
            Predicate::Tagged(_)
            | Predicate::TaggedAny(_)
            | Predicate::TaggedAll(_)
            | Predicate::IsNull { .. }
            | Predicate::Text { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::filter::SubjectKind;

    fn reach(text: &str, kind: SubjectKind) -> Reach {
        let champions = Filter::parse("events(\"login\", 7d) >= 3", SubjectKind::User).unwrap();
        let lookup = move |name: &str| (name == "Champions").then(|| champions.clone());
        Filter::parse(text, kind).unwrap().reach(&lookup)
    }

    #[test]
    fn tags_and_fixed_dates_read_no_clock() {
        let r = reach(
            "tagged(\"VIP\") and created_at < \"2024-01-01\" and attr.plan = \"pro\"",
            SubjectKind::User,
        );
        assert_eq!(r, Reach::default());
    }

    #[test]
    fn relative_dates_and_windows_read_the_clock() {
        assert!(reach("last_seen_at < now - 30d", SubjectKind::User).clock);
        assert!(reach("attr.renewal_date < now + 90d", SubjectKind::Account).clock);
        let r = reach(
            "active_days(30d) >= 20 or events(\"x\", 2w) > 0",
            SubjectKind::User,
        );
        assert_eq!(r.events_window, Some(30 * 86_400));
        assert!(r.clock);
    }

    #[test]
    fn relations_and_named_segments_are_followed() {
        let r = reach("account.tagged(\"Health: Poor\")", SubjectKind::User);
        assert!(r.account && !r.users && !r.clock);
        let r = reach("any_user(in_segment(\"Champions\"))", SubjectKind::Account);
        assert!(r.users && r.clock);
        assert_eq!(r.events_window, Some(7 * 86_400));
    }
}

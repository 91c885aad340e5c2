//! What a run records: the planned changes, netted per target and tag or
//! attribute, and the log lines.

use std::collections::HashMap;

use serde_json::Value;

use super::snapshot::{SubjectKind, SubjectSnapshot};

/// Which subject of a run a change is for: the event's subject, or (for a
/// user) its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Target {
    Subject,
    Account,
}

/// One change a script asks for, to be applied by the server. Replaying an
/// action is harmless: adding a present tag or removing an absent one
/// changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum PlannedAction {
    AddTag {
        target_kind: SubjectKind,
        target_id: String,
        tag: String,
    },
    RemoveTag {
        target_kind: SubjectKind,
        target_id: String,
        tag: String,
    },
    SetAttribute {
        target_kind: SubjectKind,
        target_id: String,
        key: String,
        value: Value,
    },
}

impl PlannedAction {
    /// Whether the change is for a user or an account.
    pub fn target_kind(&self) -> SubjectKind {
        match self {
            PlannedAction::AddTag { target_kind, .. }
            | PlannedAction::RemoveTag { target_kind, .. }
            | PlannedAction::SetAttribute { target_kind, .. } => *target_kind,
        }
    }

    /// The id of the user or account the change is for.
    pub fn target_id(&self) -> &str {
        match self {
            PlannedAction::AddTag { target_id, .. }
            | PlannedAction::RemoveTag { target_id, .. }
            | PlannedAction::SetAttribute { target_id, .. } => target_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Wanted {
    /// The tag should be present (`true`) or absent.
    Tag(bool),
    Attribute(Value),
}

/// The last state asked for one tag or attribute (`name`) of `target`.
#[derive(Debug)]
struct Change {
    target: Target,
    name: String,
    wanted: Wanted,
}

/// Where each target's tags and attributes are in `Plan::changes`.
#[derive(Debug, Default)]
struct Index {
    tags: HashMap<String, usize>,
    attributes: HashMap<String, usize>,
}

/// The net plan: for each (target, tag) and (target, attribute) the script
/// touched, the last state it asked for, in the order of first touch.
#[derive(Debug, Default)]
pub(super) struct Plan {
    changes: Vec<Change>,
    subject: Index,
    account: Index,
}

/// The plan already holds this many changes and cannot take a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlanFull;

impl Plan {
    pub(super) fn set_tag(
        &mut self,
        target: Target,
        tag: String,
        present: bool,
        max_changes: usize,
    ) -> Result<(), PlanFull> {
        self.set(target, tag, Wanted::Tag(present), max_changes)
    }

    pub(super) fn set_attribute(
        &mut self,
        target: Target,
        key: String,
        value: Value,
        max_changes: usize,
    ) -> Result<(), PlanFull> {
        self.set(target, key, Wanted::Attribute(value), max_changes)
    }

    fn index(&self, target: Target) -> &Index {
        match target {
            Target::Subject => &self.subject,
            Target::Account => &self.account,
        }
    }

    fn set(
        &mut self,
        target: Target,
        name: String,
        wanted: Wanted,
        max_changes: usize,
    ) -> Result<(), PlanFull> {
        let index = match target {
            Target::Subject => &mut self.subject,
            Target::Account => &mut self.account,
        };
        let names = match wanted {
            Wanted::Tag(_) => &mut index.tags,
            Wanted::Attribute(_) => &mut index.attributes,
        };
        if let Some(change) = names.get(&name).and_then(|&at| self.changes.get_mut(at)) {
            change.wanted = wanted;
            return Ok(());
        }
        if self.changes.len() >= max_changes {
            return Err(PlanFull);
        }
        names.insert(name.clone(), self.changes.len());
        self.changes.push(Change {
            target,
            name,
            wanted,
        });
        Ok(())
    }

    /// Whether the script asked for `tag` to be present or absent on `target`.
    fn planned_tag(&self, target: Target, tag: &str) -> Option<bool> {
        let at = *self.index(target).tags.get(tag)?;
        match self.changes.get(at)?.wanted {
            Wanted::Tag(present) => Some(present),
            Wanted::Attribute(_) => None,
        }
    }

    fn planned_present_tags(&self, target: Target) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(move |change| {
            let present = change.target == target && change.wanted == Wanted::Tag(true);
            present.then_some(change.name.as_str())
        })
    }

    /// The tags of `target` as the script sees them: the snapshot's tags
    /// not planned away, then planned additions, each once.
    pub(super) fn current_tags(&self, target: Target, snapshot: &[String]) -> Vec<String> {
        let mut tags: Vec<String> = Vec::with_capacity(snapshot.len());
        for tag in snapshot {
            if self.planned_tag(target, tag) != Some(false) && !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        for tag in self.planned_present_tags(target) {
            if !snapshot.iter().any(|t| t == tag) {
                tags.push(tag.to_owned());
            }
        }
        tags
    }

    /// Whether any current tag of `target` satisfies `predicate`.
    pub(super) fn any_current_tag(
        &self,
        target: Target,
        snapshot: &[String],
        mut predicate: impl FnMut(&str) -> bool,
    ) -> bool {
        snapshot
            .iter()
            .any(|tag| self.planned_tag(target, tag) != Some(false) && predicate(tag))
            || self.planned_present_tags(target).any(predicate)
    }

    /// The attributes the script set on `target`, in order.
    pub(super) fn planned_attributes(&self, target: Target) -> Vec<(String, Value)> {
        self.changes
            .iter()
            .filter_map(|change| match &change.wanted {
                Wanted::Attribute(value) if change.target == target => {
                    Some((change.name.clone(), value.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The actions that take `subject` (and its account) from the snapshot
    /// to what the script asked for: a change that would leave things as
    /// they were is dropped (add then remove of an absent tag, setting an
    /// attribute to its current value).
    pub(super) fn into_actions(self, subject: &SubjectSnapshot) -> Vec<PlannedAction> {
        let mut actions = Vec::new();
        for Change {
            target,
            name,
            wanted,
        } in self.changes
        {
            let snapshot = match target {
                Target::Subject => subject,
                Target::Account => match subject.visible_account() {
                    Some(account) => account,
                    None => continue,
                },
            };
            let target_kind = snapshot.kind;
            let target_id = snapshot.id.clone();
            let action = match wanted {
                Wanted::Tag(present) => {
                    if snapshot.tags.contains(&name) == present {
                        continue;
                    }
                    let tag = name;
                    if present {
                        PlannedAction::AddTag {
                            target_kind,
                            target_id,
                            tag,
                        }
                    } else {
                        PlannedAction::RemoveTag {
                            target_kind,
                            target_id,
                            tag,
                        }
                    }
                }
                Wanted::Attribute(value) => {
                    if snapshot.attributes.get(&name) == Some(&value) {
                        continue;
                    }
                    PlannedAction::SetAttribute {
                        target_kind,
                        target_id,
                        key: name,
                        value,
                    }
                }
            };
            actions.push(action);
        }
        actions
    }
}

/// A run's log lines, capped in number and length.
#[derive(Debug, Default)]
pub(super) struct LogBook {
    lines: Vec<String>,
    dropped: usize,
}

impl LogBook {
    pub(super) fn push(&mut self, text: &str, max_lines: usize, max_line_bytes: usize) {
        if self.lines.len() >= max_lines {
            self.dropped += 1;
            return;
        }
        self.lines.push(truncate(text, max_line_bytes));
    }

    /// The lines, followed by a note when some were dropped.
    pub(super) fn into_lines(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.lines
                .push(format!("({} more log lines dropped)", self.dropped));
        }
        self.lines
    }
}

/// `text` cut to at most `max_bytes` bytes on a character boundary, with
/// `…` appended when cut.
pub(super) fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("aé", 2), "a…");
        assert_eq!(truncate("é", 0), "…");
    }

    #[test]
    fn log_book_caps_lines() {
        let mut logs = LogBook::default();
        for i in 0..5 {
            logs.push(&format!("line {i}"), 3, 100);
        }
        assert_eq!(
            logs.into_lines(),
            ["line 0", "line 1", "line 2", "(2 more log lines dropped)"]
        );
    }

    #[test]
    fn net_plan_against_snapshot() {
        let mut subject = SubjectSnapshot::new(SubjectKind::User, "u1");
        subject.tags = vec!["Old".into()];
        subject.attributes.insert("plan".into(), "free".into());
        let mut plan = Plan::default();
        let steps: [(&str, bool); 6] = [
            ("New", true),
            ("New", false), // add then remove of an absent tag: nothing
            ("Old", false),
            ("Old", true),   // remove then add of a present tag: nothing
            ("Gone", false), // removing an absent tag: nothing
            ("Kept", true),
        ];
        for (tag, present) in steps {
            assert_eq!(
                plan.set_tag(Target::Subject, tag.into(), present, 10),
                Ok(())
            );
        }
        assert_eq!(
            plan.set_attribute(Target::Subject, "plan".into(), "free".into(), 10),
            Ok(())
        );
        assert_eq!(
            plan.set_attribute(Target::Subject, "seats".into(), 3.into(), 10),
            Ok(())
        );
        assert_eq!(
            plan.current_tags(Target::Subject, &subject.tags),
            ["Old", "Kept"]
        );
        assert_eq!(
            plan.into_actions(&subject),
            [
                PlannedAction::AddTag {
                    target_kind: SubjectKind::User,
                    target_id: "u1".into(),
                    tag: "Kept".into()
                },
                PlannedAction::SetAttribute {
                    target_kind: SubjectKind::User,
                    target_id: "u1".into(),
                    key: "seats".into(),
                    value: 3.into()
                },
            ]
        );
    }

    #[test]
    fn plan_is_capped_by_distinct_changes() {
        let mut plan = Plan::default();
        assert_eq!(plan.set_tag(Target::Subject, "a".into(), true, 1), Ok(()));
        assert_eq!(plan.set_tag(Target::Subject, "a".into(), false, 1), Ok(()));
        assert_eq!(
            plan.set_tag(Target::Account, "a".into(), true, 1),
            Err(PlanFull)
        );
    }
}

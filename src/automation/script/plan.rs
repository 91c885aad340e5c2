//! What a run records: the planned changes, netted per target and tag or
//! attribute, and the log lines.

use std::collections::HashMap;

use serde_json::Value;

use super::snapshot::{SubjectKind, SubjectSnapshot};
use crate::subjects::attributes::{merge_into, serialized_size};

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

    /// Bytes of output the change holds: the tag's name, or the
    /// attribute's key and its value serialized as JSON.
    pub fn bytes(&self) -> usize {
        match self {
            PlannedAction::AddTag { tag, .. } | PlannedAction::RemoveTag { tag, .. } => tag.len(),
            PlannedAction::SetAttribute { key, value, .. } => {
                key.len().saturating_add(serialized_size(value))
            }
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

impl Change {
    /// What the change adds to the plan's output: the tag's name, or the
    /// attribute's key and its value serialized as JSON.
    fn bytes(name: &str, wanted: &Wanted) -> usize {
        match wanted {
            Wanted::Tag(_) => name.len(),
            Wanted::Attribute(value) => name.len().saturating_add(serialized_size(value)),
        }
    }
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
    /// The sum of [`Change::bytes`] over `changes`.
    bytes: usize,
}

/// How much one plan may hold: distinct changes, and bytes of tag names and
/// attribute keys and values. 0 bytes means no byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Budget {
    pub(super) max_changes: usize,
    pub(super) max_bytes: usize,
}

/// Why a plan cannot take a change; the plan is left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlanFull {
    /// It already holds `max` distinct changes.
    Changes { max: usize },
    /// With the change it would hold `bytes` bytes, more than `max`.
    Bytes { max: usize, bytes: usize },
}

impl PlanFull {
    /// The run's error, naming the limit, its setting and the numbers.
    pub(super) fn message(self) -> String {
        match self {
            PlanFull::Changes { max } => format!("script planned more than {max} changes"),
            PlanFull::Bytes { max, bytes } => format!(
                "script planned {bytes} bytes of tag names and attribute values, \
                 more than its output limit of {max} bytes (--script-max-output-bytes)"
            ),
        }
    }
}

impl Plan {
    pub(super) fn set_tag(
        &mut self,
        target: Target,
        tag: String,
        present: bool,
        budget: Budget,
    ) -> Result<(), PlanFull> {
        self.set(target, tag, Wanted::Tag(present), budget)
    }

    pub(super) fn set_attribute(
        &mut self,
        target: Target,
        key: String,
        value: Value,
        budget: Budget,
    ) -> Result<(), PlanFull> {
        self.set(target, key, Wanted::Attribute(value), budget)
    }

    /// Bytes of tag names and attribute keys and values the plan holds.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
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
        budget: Budget,
    ) -> Result<(), PlanFull> {
        let index = match target {
            Target::Subject => &mut self.subject,
            Target::Account => &mut self.account,
        };
        let names = match wanted {
            Wanted::Tag(_) => &mut index.tags,
            Wanted::Attribute(_) => &mut index.attributes,
        };
        let added = Change::bytes(&name, &wanted);
        let existing = names.get(&name).and_then(|&at| self.changes.get_mut(at));
        let replaced = existing
            .as_ref()
            .map_or(0, |change| Change::bytes(&change.name, &change.wanted));
        let bytes = self.bytes.saturating_sub(replaced).saturating_add(added);
        if budget.max_bytes > 0 && bytes > budget.max_bytes {
            return Err(PlanFull::Bytes {
                max: budget.max_bytes,
                bytes,
            });
        }
        if let Some(change) = existing {
            change.wanted = wanted;
            self.bytes = bytes;
            return Ok(());
        }
        if self.changes.len() >= budget.max_changes {
            return Err(PlanFull::Changes {
                max: budget.max_changes,
            });
        }
        names.insert(name.clone(), self.changes.len());
        self.changes.push(Change {
            target,
            name,
            wanted,
        });
        self.bytes = bytes;
        Ok(())
    }

    /// Checks that the attributes of each subject the plan sets attributes
    /// on stay within `max_bytes` (serialized, after the plan's changes are
    /// merged into the snapshot's), or says which subject breaks it and by
    /// how much. 0 means no limit.
    pub(super) fn check_attribute_sizes(
        &self,
        subject: &SubjectSnapshot,
        max_bytes: usize,
    ) -> Result<(), String> {
        if max_bytes == 0 {
            return Ok(());
        }
        for target in [Target::Subject, Target::Account] {
            if self.index(target).attributes.is_empty() {
                continue;
            }
            let snapshot = match target {
                Target::Subject => subject,
                Target::Account => match subject.visible_account() {
                    Some(account) => account,
                    None => continue,
                },
            };
            let merged = merge_into(snapshot.attributes.clone(), self.planned_attributes(target));
            let bytes = serialized_size(&merged);
            if bytes > max_bytes {
                return Err(attributes_too_large(
                    snapshot.kind.as_str(),
                    &snapshot.id,
                    bytes,
                    max_bytes,
                ));
            }
        }
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

/// The error of a run (or of applying its plan) that would leave a
/// subject's attributes larger than allowed.
pub fn attributes_too_large(kind: &str, id: &str, bytes: usize, max_bytes: usize) -> String {
    format!(
        "the attributes of {kind} {id} would take {bytes} bytes, more than the limit of \
         {max_bytes} bytes per subject (--max-attributes-bytes)"
    )
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

    const ROOMY: Budget = Budget {
        max_changes: 10,
        max_bytes: 0,
    };

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
                plan.set_tag(Target::Subject, tag.into(), present, ROOMY),
                Ok(())
            );
        }
        assert_eq!(
            plan.set_attribute(Target::Subject, "plan".into(), "free".into(), ROOMY),
            Ok(())
        );
        assert_eq!(
            plan.set_attribute(Target::Subject, "seats".into(), 3.into(), ROOMY),
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
        let one = Budget {
            max_changes: 1,
            max_bytes: 0,
        };
        let mut plan = Plan::default();
        assert_eq!(plan.set_tag(Target::Subject, "a".into(), true, one), Ok(()));
        assert_eq!(
            plan.set_tag(Target::Subject, "a".into(), false, one),
            Ok(())
        );
        assert_eq!(
            plan.set_tag(Target::Account, "a".into(), true, one),
            Err(PlanFull::Changes { max: 1 })
        );
    }

    #[test]
    fn plan_is_capped_by_bytes_of_tag_names_and_attributes() {
        let budget = Budget {
            max_changes: 100,
            max_bytes: 20,
        };
        let mut plan = Plan::default();
        // "abcd" + "e": 5 bytes; "k" + "\"xxxxxxxx\"": 11 bytes.
        assert_eq!(
            plan.set_tag(Target::Subject, "abcd".into(), true, budget),
            Ok(())
        );
        assert_eq!(
            plan.set_tag(Target::Account, "e".into(), false, budget),
            Ok(())
        );
        let value = |n: usize| Value::String("x".repeat(n));
        assert_eq!(
            plan.set_attribute(Target::Subject, "k".into(), value(8), budget),
            Ok(())
        );
        assert_eq!(plan.bytes(), 16);
        // One more byte than the budget: refused, and the plan is unchanged.
        assert_eq!(
            plan.set_attribute(Target::Account, "j".into(), value(2), budget),
            Err(PlanFull::Bytes { max: 20, bytes: 21 })
        );
        assert_eq!(plan.bytes(), 16);
        assert_eq!(plan.planned_attributes(Target::Account), []);
        // Replacing a value counts the new value instead of the old one.
        assert_eq!(
            plan.set_attribute(Target::Subject, "k".into(), value(12), budget),
            Ok(())
        );
        assert_eq!(plan.bytes(), 20);
        assert_eq!(
            plan.set_attribute(Target::Subject, "k".into(), value(13), budget),
            Err(PlanFull::Bytes { max: 20, bytes: 21 })
        );
        assert_eq!(
            plan.planned_attributes(Target::Subject),
            [("k".to_owned(), value(12))]
        );
        assert_eq!(
            plan.set_attribute(Target::Subject, "k".into(), Value::Null, budget),
            Ok(())
        );
        assert_eq!(plan.bytes(), 10);
        let message = PlanFull::Bytes { max: 20, bytes: 21 }.message();
        assert!(message.contains("21 bytes"), "{message}");
        assert!(message.contains("limit of 20 bytes"), "{message}");
        assert!(message.contains("--script-max-output-bytes"), "{message}");
    }

    #[test]
    fn attributes_after_the_plan_are_capped_per_subject() {
        let budget = Budget {
            max_changes: 100,
            max_bytes: 0,
        };
        let mut subject = SubjectSnapshot::new(SubjectKind::User, "u1");
        subject
            .attributes
            .insert("old".into(), "x".repeat(20).into());
        let mut plan = Plan::default();
        plan.set_tag(Target::Subject, "t".repeat(100), true, budget)
            .unwrap();
        // Tags alone never count against the attributes.
        assert_eq!(plan.check_attribute_sizes(&subject, 30), Ok(()));
        // {"old":"xxxxxxxxxxxxxxxxxxxx","new":1} is 38 bytes.
        plan.set_attribute(Target::Subject, "new".into(), 1.into(), budget)
            .unwrap();
        assert_eq!(plan.check_attribute_sizes(&subject, 38), Ok(()));
        let error = plan.check_attribute_sizes(&subject, 37).unwrap_err();
        assert_eq!(
            error,
            "the attributes of USER u1 would take 38 bytes, more than the limit of 37 bytes \
             per subject (--max-attributes-bytes)"
        );
        // Removing a key (null) makes room: {"new":1} is 9 bytes.
        plan.set_attribute(Target::Subject, "old".into(), Value::Null, budget)
            .unwrap();
        assert_eq!(plan.check_attribute_sizes(&subject, 9), Ok(()));
        assert_eq!(plan.check_attribute_sizes(&subject, 0), Ok(()), "no limit");
    }
}

//! The same person twice in a file: the later row wins. The first pass
//! records, for each key (email, external id, account name), the last line
//! that has it; the second pass keeps a row only when it is the last of
//! each of its keys. Keys are kept as 128-bit hashes, so a file of millions
//! of rows costs tens of megabytes, not its size.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::rows::RowError;

/// The last line of each key seen so far.
#[derive(Debug, Default)]
pub struct Dedup {
    last: HashMap<(u64, u64), u64>,
    superseded: HashSet<u64>,
}

fn fingerprint(kind: &str, value: &str) -> (u64, u64) {
    let mut first = DefaultHasher::new();
    (kind, value).hash(&mut first);
    let mut second = DefaultHasher::new();
    ("tagsmith import", kind, value).hash(&mut second);
    (first.finish(), second.finish())
}

impl Dedup {
    /// Records a row's keys (first pass). Returns a report for each earlier
    /// row it replaces (each earlier row is reported once).
    pub fn record(&mut self, line: u64, keys: &[(&'static str, &str)]) -> Vec<RowError> {
        let mut reports = Vec::new();
        for (kind, value) in keys {
            let Some(earlier) = self.last.insert(fingerprint(kind, value), line) else {
                continue;
            };
            if earlier != line && self.superseded.insert(earlier) {
                reports.push(RowError {
                    line: earlier,
                    message: format!(
                        "skipped: line {line} has the same {kind} {value:?}; the later row wins"
                    ),
                });
            }
        }
        reports
    }

    /// Whether a row is the last of each of its keys (second pass).
    pub fn keeps(&self, line: u64, keys: &[(&'static str, &str)]) -> bool {
        !self.superseded.contains(&line)
            && keys
                .iter()
                .all(|(kind, value)| self.last.get(&fingerprint(kind, value)) == Some(&line))
    }

    /// How many rows a later row replaces.
    pub fn superseded(&self) -> usize {
        self.superseded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_later_row_wins_and_the_earlier_is_reported_once() {
        let rows: [(u64, &[(&str, &str)]); 4] = [
            (2, &[("email", "a@x.com"), ("external_id", "X")]),
            (3, &[("email", "b@x.com"), ("external_id", "X")]),
            (4, &[("email", "a@x.com")]),
            (5, &[("email", "c@x.com")]),
        ];
        let mut dedup = Dedup::default();
        let mut reports = Vec::new();
        for (line, keys) in rows {
            reports.extend(dedup.record(line, keys));
        }
        let reports: Vec<String> = reports
            .iter()
            .map(|r| format!("{}: {}", r.line, r.message))
            .collect();
        assert_eq!(
            reports,
            ["2: skipped: line 3 has the same external_id \"X\"; the later row wins",]
        );
        let kept: Vec<u64> = rows
            .iter()
            .filter(|(line, keys)| dedup.keeps(*line, keys))
            .map(|(line, _)| *line)
            .collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(dedup.superseded(), 1);
    }
}

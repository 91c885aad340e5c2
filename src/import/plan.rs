//! What a batch of rows does, given the subjects that exist: insert,
//! update, or a conflict that skips the row. Pure: the writer looks up the
//! existing subjects, plans, then writes the plan with set-based SQL.
//!
//! Rows are planned in file order with the rules of `subjects::users::upsert`
//! (the key is the external id when given, else the email; a user found by
//! email without an external id adopts the given one). Planning stops before
//! a row whose outcome depends on what an earlier row of the batch changes
//! (an email an earlier row takes or frees, say): the writer writes what is
//! planned and plans the rest again, so a batch gives what row-by-row
//! upserts would.

use std::collections::{HashMap, HashSet};

use super::rows::{AccountRow, UserRow};

/// What one row does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Insert,
    Update {
        id: i64,
    },
    /// Skipped, with the reason.
    Conflict(String),
}

/// A user that exists, as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingUser {
    pub id: i64,
    pub email: String,
    pub external_id: Option<String>,
}

/// An account that exists, as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingAccount {
    pub id: i64,
    pub external_id: Option<String>,
    pub name: String,
}

/// Keys earlier rows of the batch changed, and subjects they wrote.
#[derive(Default)]
struct Touched<'a> {
    keys: HashSet<(&'static str, &'a str)>,
    ids: HashSet<i64>,
}

/// Plans user rows in order; returns one action per row planned, which
/// may be fewer than `rows` (see the module docs). The first row is always planned.
pub fn users(rows: &[UserRow], existing: &[ExistingUser]) -> Vec<Action> {
    let by_email: HashMap<&str, &ExistingUser> =
        existing.iter().map(|u| (u.email.as_str(), u)).collect();
    let by_external_id: HashMap<&str, &ExistingUser> = existing
        .iter()
        .filter_map(|u| Some((u.external_id.as_deref()?, u)))
        .collect();
    let mut touched = Touched::default();
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        let email = row.email.as_str();
        let external_id = row.external_id.as_deref();
        if touched.keys.contains(&("email", email))
            || external_id.is_some_and(|x| touched.keys.contains(&("external_id", x)))
        {
            break;
        }
        let found_by_email = by_email.get(email).copied();
        let target = match external_id {
            None => Ok(found_by_email),
            Some(x) => match (by_external_id.get(x).copied(), found_by_email) {
                (Some(user), Some(other)) if other.id != user.id => {
                    Err(format!("another user already has email {email:?}"))
                }
                (Some(user), _) => Ok(Some(user)),
                (None, Some(user)) => match &user.external_id {
                    None => Ok(Some(user)),
                    Some(theirs) => Err(format!(
                        "email {email:?} belongs to the user with external_id {theirs:?}"
                    )),
                },
                (None, None) => Ok(None),
            },
        };
        let action = match target {
            Err(conflict) => Action::Conflict(conflict),
            Ok(Some(user)) => {
                if !touched.ids.insert(user.id) {
                    break;
                }
                if user.email != email {
                    touched.keys.insert(("email", user.email.as_str()));
                    touched.keys.insert(("email", email));
                }
                if let Some(x) = external_id {
                    touched.keys.insert(("external_id", x));
                }
                Action::Update { id: user.id }
            }
            Ok(None) => {
                touched.keys.insert(("email", email));
                if let Some(x) = external_id {
                    touched.keys.insert(("external_id", x));
                }
                Action::Insert
            }
        };
        actions.push(action);
    }
    if actions.is_empty() && !rows.is_empty() {
        // Unreachable (nothing is touched before the first row); never loop.
        actions.push(Action::Insert);
    }
    actions
}

/// Plans account rows in order: by external id when given (created when
/// missing), else by name (the oldest account of that name; created when
/// missing). Returns one action per row planned, as [`users`].
pub fn accounts(rows: &[AccountRow], existing: &[ExistingAccount]) -> Vec<Action> {
    let mut by_name: HashMap<&str, &ExistingAccount> = HashMap::new();
    let mut sorted: Vec<&ExistingAccount> = existing.iter().collect();
    sorted.sort_by_key(|a| a.id);
    for account in &sorted {
        by_name.entry(account.name.as_str()).or_insert(account);
    }
    let by_external_id: HashMap<&str, &ExistingAccount> = existing
        .iter()
        .filter_map(|a| Some((a.external_id.as_deref()?, a)))
        .collect();
    let mut touched = Touched::default();
    let mut actions = Vec::with_capacity(rows.len());
    for row in rows {
        let name = row.name.as_deref();
        let external_id = row.external_id.as_deref();
        if name.is_some_and(|n| touched.keys.contains(&("name", n)))
            || external_id.is_some_and(|x| touched.keys.contains(&("external_id", x)))
        {
            break;
        }
        let target = match external_id {
            Some(x) => by_external_id.get(x).copied(),
            None => name.and_then(|n| by_name.get(n).copied()),
        };
        let action = match target {
            Some(account) => {
                if !touched.ids.insert(account.id) {
                    break;
                }
                if let Some(name) = name.filter(|n| *n != account.name) {
                    touched.keys.insert(("name", account.name.as_str()));
                    touched.keys.insert(("name", name));
                }
                Action::Update { id: account.id }
            }
            None => {
                if let Some(name) = name.or(external_id) {
                    touched.keys.insert(("name", name));
                }
                if let Some(x) = external_id {
                    touched.keys.insert(("external_id", x));
                }
                Action::Insert
            }
        };
        actions.push(action);
    }
    if actions.is_empty() && !rows.is_empty() {
        actions.push(Action::Insert);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subjects::email::Email;

    fn row(line: u64, email: &str, external_id: Option<&str>) -> UserRow {
        UserRow {
            line,
            email: Email::parse(email).unwrap(),
            external_id: external_id.map(str::to_owned),
            first_name: None,
            last_name: None,
            account: None,
            tags: Vec::new(),
        }
    }

    fn user(id: i64, email: &str, external_id: Option<&str>) -> ExistingUser {
        ExistingUser {
            id,
            email: email.to_owned(),
            external_id: external_id.map(str::to_owned),
        }
    }

    #[test]
    fn the_upsert_rules() {
        let existing = [
            user(1, "ana@x.com", None),
            user(2, "bo@x.com", Some("B")),
            user(3, "cy@x.com", Some("C")),
        ];
        let rows = [
            row(2, "ana@x.com", None),      // found by email
            row(3, "new@x.com", None),      // new
            row(4, "bo2@x.com", Some("B")), // found by external id, email changes
            row(5, "cy@x.com", Some("Z")),  // email of a user with another external id
            row(6, "dee@x.com", Some("D")), // new with an external id
        ];
        let actions = users(&rows, &existing);
        assert_eq!(
            actions,
            [
                Action::Update { id: 1 },
                Action::Insert,
                Action::Update { id: 2 },
                Action::Conflict(
                    "email \"cy@x.com\" belongs to the user with external_id \"C\"".into()
                ),
                Action::Insert,
            ]
        );
        let adopt = users(&[row(2, "ana@x.com", Some("A"))], &existing);
        assert_eq!(adopt, [Action::Update { id: 1 }]);
        let taken = users(&[row(2, "ana@x.com", Some("B"))], &existing);
        assert_eq!(
            taken,
            [Action::Conflict(
                "another user already has email \"ana@x.com\"".into()
            )]
        );
    }

    #[test]
    fn a_row_that_depends_on_an_earlier_one_starts_a_new_plan() {
        // Line 2 moves user 2 from bo@ to ana2@; line 3's bo@ is then free.
        let existing = [user(2, "bo@x.com", Some("B"))];
        let rows = [row(2, "ana2@x.com", Some("B")), row(3, "bo@x.com", None)];
        assert_eq!(users(&rows, &existing), [Action::Update { id: 2 }]);
        // The writer writes line 2, looks up again and plans line 3 alone.
        let after = [user(2, "ana2@x.com", Some("B"))];
        assert_eq!(users(&rows[1..], &after), [Action::Insert]);
    }

    #[test]
    fn accounts_by_external_id_else_oldest_of_the_name() {
        let existing = [
            ExistingAccount {
                id: 5,
                external_id: None,
                name: "Acme".into(),
            },
            ExistingAccount {
                id: 4,
                external_id: Some("acme".into()),
                name: "Acme".into(),
            },
        ];
        let account = |line, x: Option<&str>, name: Option<&str>| AccountRow {
            line,
            external_id: x.map(str::to_owned),
            name: name.map(str::to_owned),
            tags: Vec::new(),
        };
        let rows = [
            account(2, None, Some("Acme")),
            account(3, Some("globex"), Some("Globex")),
            account(4, None, Some("Globex")),
        ];
        // Line 4 names the account line 3 creates: planned again after it.
        assert_eq!(
            accounts(&rows, &existing),
            [Action::Update { id: 4 }, Action::Insert]
        );
    }
}

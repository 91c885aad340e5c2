//! One record of a file becomes a valid row, or the reasons it is bad,
//! named by line. Pure: no IO.

use std::collections::BTreeSet;

use super::header::{Column, Header, Kind};
use super::limits::{MAX_CELL_BYTES, MAX_TAGS_PER_CELL, MAX_TAGS_PER_ROW, thousands};
use crate::subjects::clean_text;
use crate::subjects::email::Email;
use crate::tags::name::{TagName, TagRules};

/// A bad row (or a row superseded by a later one), by its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The account a user row names: by external id (created with `name`, or
/// the external id as name, when missing) or else by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountRef {
    ExternalId {
        external_id: String,
        name: Option<String>,
    },
    Name(String),
}

/// A valid user row. Empty cells are `None`: they leave the field as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub line: u64,
    pub email: Email,
    pub external_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub account: Option<AccountRef>,
    /// Distinct, in name order.
    pub tags: Vec<TagName>,
}

/// A valid account row: at least one of `external_id` and `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub line: u64,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<TagName>,
}

/// A valid row of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    User(UserRow),
    Account(AccountRow),
}

impl Row {
    pub fn line(&self) -> u64 {
        match self {
            Row::User(row) => row.line,
            Row::Account(row) => row.line,
        }
    }

    /// The keys under which a later row replaces this one.
    pub fn keys(&self) -> Vec<(&'static str, &str)> {
        match self {
            Row::User(row) => {
                let mut keys = vec![("email", row.email.as_str())];
                if let Some(id) = &row.external_id {
                    keys.push(("external_id", id));
                }
                keys
            }
            Row::Account(row) => match (&row.external_id, &row.name) {
                (Some(id), _) => vec![("external_id", id)],
                (None, Some(name)) => vec![("name", name)],
                (None, None) => Vec::new(),
            },
        }
    }
}

/// The reasons a record is bad, collected so that one message names them all.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.0.push(problem);
                None
            }
        }
    }
}

/// Checks one record against the header and the workspace's tag rules.
pub fn parse<S: AsRef<str>>(
    header: &Header,
    line: u64,
    cells: &[S],
    rules: TagRules,
) -> Result<Row, RowError> {
    let fail = |message: String| RowError { line, message };
    if cells.len() != header.len() {
        return Err(fail(format!(
            "has {} cells; the header has {}",
            cells.len(),
            header.len()
        )));
    }
    let mut problems = Problems::default();
    let mut fields: Vec<(&Column, &str)> = Vec::new();
    let mut tags: BTreeSet<TagName> = BTreeSet::new();
    for (index, (column, cell)) in header.columns.iter().zip(cells).enumerate() {
        let value = cell.as_ref().trim();
        // A `tags` cell over the tag limit says so, whatever its size.
        if value.len() > MAX_CELL_BYTES && *column != Column::Tags {
            problems.0.push(format!(
                "the cell of column {} is {} bytes long; a cell holds at most {}",
                column_name(header.kind, column, index),
                thousands(value.len() as u64),
                thousands(MAX_CELL_BYTES as u64)
            ));
            continue;
        }
        match column {
            Column::Ignored => {}
            Column::Tags => {
                let pieces = super::tags_cell::split(value);
                if pieces.len() > MAX_TAGS_PER_CELL {
                    problems.0.push(format!(
                        "the tags cell holds {} tags; a cell holds at most {MAX_TAGS_PER_CELL}",
                        thousands(pieces.len() as u64)
                    ));
                    continue;
                }
                if value.len() > MAX_CELL_BYTES {
                    problems.0.push(format!(
                        "the tags cell is {} bytes long; a cell holds at most {}",
                        thousands(value.len() as u64),
                        thousands(MAX_CELL_BYTES as u64)
                    ));
                    continue;
                }
                for piece in pieces {
                    if let Some(tag) = problems.take(tag(&piece, rules)) {
                        tags.insert(tag);
                    }
                }
            }
            Column::Tag(key) if !value.is_empty() => {
                let name = format!("{key}: {value}");
                let parsed = tag(&name, rules).map_err(|e| format!("column {key:?}: {e}"));
                if let Some(tag) = problems.take(parsed) {
                    tags.insert(tag);
                }
            }
            Column::Tag(_) => {}
            field => fields.push((field, value)),
        }
    }
    if tags.len() > MAX_TAGS_PER_ROW {
        problems.0.push(format!(
            "gives {} tags (its tags cell and tag columns); a row gives at most {MAX_TAGS_PER_ROW}",
            thousands(tags.len() as u64)
        ));
    }
    let get = |wanted: &Column| {
        fields
            .iter()
            .find(|(column, _)| *column == wanted)
            .map(|(_, value)| *value)
            .filter(|value| !value.is_empty())
    };
    let mut text = |column: &Column, name: &str, max: usize| {
        get(column).and_then(|value| {
            problems.take(clean_text(name, value, max).map_err(|e| e.to_string()))
        })
    };
    let row = match header.kind {
        Kind::Users => {
            let external_id = text(&Column::ExternalId, "external_id", 200);
            let first_name = text(&Column::FirstName, "first_name", 100);
            let last_name = text(&Column::LastName, "last_name", 100);
            let account_external_id = text(&Column::AccountExternalId, "account_external_id", 200);
            let account_name = text(&Column::AccountName, "account_name", 200);
            let email = match get(&Column::Email) {
                None => problems.take(Err("email is empty".to_owned())),
                Some(raw) => problems.take(Email::parse(raw).map_err(|e| e.to_string())),
            };
            let account = match (account_external_id, account_name) {
                (Some(external_id), name) => Some(AccountRef::ExternalId { external_id, name }),
                (None, Some(name)) => Some(AccountRef::Name(name)),
                (None, None) => None,
            };
            email.map(|email| {
                Row::User(UserRow {
                    line,
                    email,
                    external_id,
                    first_name,
                    last_name,
                    account,
                    tags: tags.into_iter().collect(),
                })
            })
        }
        Kind::Accounts => {
            let external_id = text(&Column::ExternalId, "external_id", 200);
            let name = text(&Column::Name, "name", 200);
            if external_id.is_none() && name.is_none() && problems.0.is_empty() {
                problems
                    .0
                    .push("external_id and name are both empty".to_owned());
            }
            Some(Row::Account(AccountRow {
                line,
                external_id,
                name,
                tags: tags.into_iter().collect(),
            }))
        }
    };
    match row {
        Some(row) if problems.0.is_empty() => Ok(row),
        _ => Err(fail(problems.0.join("; "))),
    }
}

/// A column as a row error names it: its header name, else its position.
fn column_name(kind: Kind, column: &Column, index: usize) -> String {
    match column {
        Column::Tag(key) => format!("{:?}", shorten(key)),
        Column::Ignored => format!("{}", index + 1),
        field => kind
            .fields()
            .iter()
            .find(|(_, c)| c == field)
            .map_or_else(|| format!("{}", index + 1), |(name, _)| (*name).to_owned()),
    }
}

fn tag(raw: &str, rules: TagRules) -> Result<TagName, String> {
    TagName::parse(raw, rules).map_err(|e| format!("tag {:?} {e}", shorten(raw)))
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        text.chars().take(60).chain(['…']).collect()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    fn check(kind: Kind, header: &[&str], cells: &[&str], expected: Expect) {
        let header = Header::parse(kind, header).expect("header");
        let actual = match parse(&header, 7, cells, TagRules::default()) {
            Ok(Row::User(row)) => {
                let tags: Vec<&str> = row.tags.iter().map(TagName::as_str).collect();
                format!(
                    "user {} external_id={:?} first={:?} last={:?} account={:?} tags={tags:?}",
                    row.email.as_str(),
                    row.external_id,
                    row.first_name,
                    row.last_name,
                    row.account
                )
            }
            Ok(Row::Account(row)) => {
                let tags: Vec<&str> = row.tags.iter().map(TagName::as_str).collect();
                format!(
                    "account external_id={:?} name={:?} tags={tags:?}",
                    row.external_id, row.name
                )
            }
            Err(error) => format!("line {}: {}", error.line, error.message),
        };
        expected.assert_eq(&actual);
    }

    const LEARNING: &[&str] = &[
        "email",
        "first_name",
        "last_name",
        "Department",
        "Region",
        "Job Title",
    ];

    #[test]
    fn columns_become_key_value_tags() {
        check(
            Kind::Users,
            LEARNING,
            &[
                " ana@acme.com ",
                "Ana",
                "Lima",
                "Sales",
                " EMEA ",
                "Account Executive",
            ],
            expect![[
                r#"user ana@acme.com external_id=None first=Some("Ana") last=Some("Lima") account=None tags=["Department: Sales", "Job Title: Account Executive", "Region: EMEA"]"#
            ]],
        );
    }

    #[test]
    fn empty_cells_leave_fields_and_make_no_tag() {
        check(
            Kind::Users,
            LEARNING,
            &["ana@acme.com", "", " ", "Sales", "", ""],
            expect![[
                r#"user ana@acme.com external_id=None first=None last=None account=None tags=["Department: Sales"]"#
            ]],
        );
    }

    #[test]
    fn tags_column_splits_on_semicolons() {
        check(
            Kind::Users,
            &[
                "email",
                "tags",
                "external_id",
                "account_external_id",
                "account_name",
            ],
            &[
                "bo@acme.com",
                "VIP; sports/football ;;Hot Lead;VIP",
                "u-1",
                "acme",
                "Acme Inc",
            ],
            expect![[
                r#"user bo@acme.com external_id=Some("u-1") first=None last=None account=Some(ExternalId { external_id: "acme", name: Some("Acme Inc") }) tags=["Hot Lead", "VIP", "sports/football"]"#
            ]],
        );
        check(
            Kind::Users,
            &["email", "account_name"],
            &["bo@acme.com", "Acme"],
            expect![[
                r#"user bo@acme.com external_id=None first=None last=None account=Some(Name("Acme")) tags=[]"#
            ]],
        );
    }

    #[test]
    fn bad_rows_name_every_reason() {
        check(
            Kind::Users,
            LEARNING,
            &["not-an-email", "Ana", "", "Sales", "", ""],
            expect![[r#"line 7: invalid email "not-an-email": it has no @"#]],
        );
        check(
            Kind::Users,
            LEARNING,
            &["", "Ana", "", "", "", ""],
            expect![[r#"line 7: email is empty"#]],
        );
        check(
            Kind::Users,
            &["email", "tags", "Team"],
            &["ana@acme.com", "a//b;ok", "*"],
            expect![[
                r#"line 7: tag "a//b" has an empty level (levels are separated by `/`); column "Team": tag "Team: *" uses `*`, which is kept for patterns such as `a/*` and `Key: *`"#
            ]],
        );
        check(
            Kind::Users,
            LEARNING,
            &["ana@acme.com", "Ana"],
            expect![[r#"line 7: has 2 cells; the header has 6"#]],
        );
        check(
            Kind::Users,
            &["email", "first_name"],
            &["ana@acme.com", &"x".repeat(101)],
            expect![[r#"line 7: first_name is longer than 100 characters"#]],
        );
    }

    #[test]
    fn rows_over_the_limits_are_refused() {
        let many: Vec<String> = (0..=MAX_TAGS_PER_CELL).map(|i| format!("t{i}")).collect();
        check(
            Kind::Users,
            &["email", "tags"],
            &["ana@acme.com", &many.join(";")],
            expect![[r#"line 7: the tags cell holds 101 tags; a cell holds at most 100"#]],
        );
        check(
            Kind::Users,
            &["email", "Notes"],
            &["ana@acme.com", &"x".repeat(MAX_CELL_BYTES + 1)],
            expect![[
                r#"line 7: the cell of column "Notes" is 16,385 bytes long; a cell holds at most 16,384"#
            ]],
        );
        let mut header = vec!["email".to_owned(), "tags".to_owned()];
        let mut cells = vec!["ana@acme.com".to_owned(), many[..100].join(";")];
        for i in 0..150 {
            header.push(format!("C{i}"));
            cells.push("x".to_owned());
        }
        check(
            Kind::Users,
            &header.iter().map(String::as_str).collect::<Vec<_>>(),
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
            expect![[
                r#"line 7: gives 250 tags (its tags cell and tag columns); a row gives at most 200"#
            ]],
        );
    }

    #[test]
    fn account_rows() {
        check(
            Kind::Accounts,
            &["external_id", "name", "Plan", "tags"],
            &["acme", "Acme Inc", "Pro", "Enterprise"],
            expect![[
                r#"account external_id=Some("acme") name=Some("Acme Inc") tags=["Enterprise", "Plan: Pro"]"#
            ]],
        );
        check(
            Kind::Accounts,
            &["external_id", "name", "Plan"],
            &["", " ", "Pro"],
            expect![[r#"line 7: external_id and name are both empty"#]],
        );
    }

    proptest! {
        /// Whatever a cell holds, a row is either refused with a reason or
        /// every tag it yields is a valid name that came from its cells.
        #[test]
        fn any_cells_give_a_valid_row_or_a_reason(
            email in "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)|[ -~]{0,12}",
            dept in "[ -~]{0,20}",
            tags in "[ -~;/]{0,30}",
        ) {
            let header = Header::parse(Kind::Users, &["email", "Department", "tags"]).unwrap();
            match parse(&header, 2, &[email.as_str(), dept.as_str(), tags.as_str()], TagRules::default()) {
                Ok(Row::User(row)) => {
                    prop_assert_eq!(row.email.as_str(), email.trim());
                    for tag in &row.tags {
                        prop_assert!(TagName::parse(tag.as_str(), TagRules::default()).is_ok());
                        let from_column = tag.as_str() == format!("Department: {}", dept.trim());
                        let from_tags = crate::import::tags_cell::split(&tags).iter().any(|p| p == tag.as_str());
                        prop_assert!(from_column || from_tags, "{:?} came from nowhere", tag);
                    }
                    let dept_tag = !dept.trim().is_empty();
                    prop_assert!(!dept_tag || row.tags.iter().any(|t| t.key_value() == Some(("Department", dept.trim()))));
                }
                Ok(Row::Account(_)) => prop_assert!(false, "a users header gives user rows"),
                Err(error) => {
                    prop_assert_eq!(error.line, 2);
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
    }
}

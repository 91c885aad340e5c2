//! The header row: which column holds which field. Names match ignoring
//! case and surrounding spaces; a column that is not a field is a tag
//! column (`Department` makes `Department: Sales`); a column without a
//! name is ignored.

use super::ImportError;
use super::limits::{MAX_COLUMNS, thousands};

/// The refusal of a header wider than [`MAX_COLUMNS`].
pub fn too_many_columns(columns: usize) -> ImportError {
    ImportError::TooLarge(format!(
        "the header has {} columns; an import takes at most {MAX_COLUMNS} (fields and tag columns): split the file",
        thousands(columns as u64)
    ))
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Users,
    Accounts,
}

impl Kind {
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Users => "users",
            Kind::Accounts => "accounts",
        }
    }

    /// The field columns of this kind, as written in a header.
    pub fn fields(self) -> &'static [(&'static str, Column)] {
        match self {
            Kind::Users => &[
                ("email", Column::Email),
                ("external_id", Column::ExternalId),
                ("first_name", Column::FirstName),
                ("last_name", Column::LastName),
                ("account_external_id", Column::AccountExternalId),
                ("account_name", Column::AccountName),
                ("tags", Column::Tags),
            ],
            Kind::Accounts => &[
                ("external_id", Column::ExternalId),
                ("name", Column::Name),
                ("tags", Column::Tags),
            ],
        }
    }
}

/// What one column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Email,
    ExternalId,
    FirstName,
    LastName,
    AccountExternalId,
    AccountName,
    Name,
    /// Tags separated by `;`.
    Tags,
    /// Any other column: a non-empty cell becomes the tag `Column: value`.
    Tag(String),
    /// A column without a name.
    Ignored,
}

/// The columns of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub columns: Vec<Column>,
}

impl Header {
    /// Reads the header row. Refuses a file without the required column
    /// (`email` for users; `external_id` or `name` for accounts), with a
    /// field named twice, or with control characters (not CSV text).
    pub fn parse<S: AsRef<str>>(kind: Kind, cells: &[S]) -> Result<Header, ImportError> {
        if cells.len() > MAX_COLUMNS {
            return Err(too_many_columns(cells.len()));
        }
        let mut columns = Vec::with_capacity(cells.len());
        for (index, cell) in cells.iter().enumerate() {
            let raw = cell.as_ref();
            let name = if index == 0 {
                raw.trim_start_matches('\u{feff}').trim()
            } else {
                raw.trim()
            };
            if name.chars().any(char::is_control) {
                return Err(ImportError::NotCsv(
                    "the file is not CSV text: its header has control characters".into(),
                ));
            }
            if name.is_empty() {
                columns.push(Column::Ignored);
                continue;
            }
            let field = kind
                .fields()
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, column)| column.clone());
            match field {
                Some(column) if columns.contains(&column) => {
                    return Err(ImportError::BadHeader(format!(
                        "the column `{}` appears twice in the header",
                        name.to_ascii_lowercase()
                    )));
                }
                Some(column) => columns.push(column),
                None => columns.push(Column::Tag(name.to_owned())),
            }
        }
        let has = |column: &Column| columns.contains(column);
        let missing = match kind {
            Kind::Users if !has(&Column::Email) => Some("`email` column"),
            Kind::Accounts if !has(&Column::ExternalId) && !has(&Column::Name) => {
                Some("`external_id` or `name` column")
            }
            _ => None,
        };
        if let Some(missing) = missing {
            let found: Vec<String> = cells
                .iter()
                .map(|c| c.as_ref().trim_start_matches('\u{feff}').trim())
                .filter(|c| !c.is_empty())
                .take(10)
                .map(|c| format!("`{c}`"))
                .collect();
            let found = if found.is_empty() {
                "no column names".to_owned()
            } else {
                found.join(", ")
            };
            return Err(ImportError::BadHeader(format!(
                "the header has no {missing}; the first row must name the columns (found {found})"
            )));
        }
        Ok(Header { kind, columns })
    }

    pub fn len(&self) -> usize {
        self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(kind: Kind, header: &[&str], expected: Expect) {
        let actual = match Header::parse(kind, header) {
            Ok(header) => format!("{:?}", header.columns),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn learning_platform_header() {
        check(
            Kind::Users,
            &[
                "\u{feff}Email",
                " first_name ",
                "LAST_NAME",
                "Department",
                "Region",
                "Job Title",
            ],
            expect![[
                r#"[Email, FirstName, LastName, Tag("Department"), Tag("Region"), Tag("Job Title")]"#
            ]],
        );
    }

    #[test]
    fn every_user_field_and_an_unnamed_column() {
        check(
            Kind::Users,
            &[
                "external_id",
                "email",
                "Tags",
                "account_external_id",
                "account_name",
                "",
            ],
            expect![[r#"[ExternalId, Email, Tags, AccountExternalId, AccountName, Ignored]"#]],
        );
    }

    #[test]
    fn refused_headers() {
        check(
            Kind::Users,
            &["first_name", "last_name"],
            expect![[
                r#"error: the header has no `email` column; the first row must name the columns (found `first_name`, `last_name`)"#
            ]],
        );
        check(
            Kind::Users,
            &["email", "EMAIL"],
            expect![[r#"error: the column `email` appears twice in the header"#]],
        );
        check(
            Kind::Users,
            &["PK\u{3}\u{4}", "email"],
            expect![[r#"error: the file is not CSV text: its header has control characters"#]],
        );
        let wide: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
        let error = Header::parse(Kind::Users, &wide).unwrap_err().to_string();
        assert_eq!(
            error,
            "the header has 201 columns; an import takes at most 200 (fields and tag columns): split the file"
        );
        check(
            Kind::Accounts,
            &["plan"],
            expect![[
                r#"error: the header has no `external_id` or `name` column; the first row must name the columns (found `plan`)"#
            ]],
        );
    }

    #[test]
    fn accounts_header() {
        check(
            Kind::Accounts,
            &["external_id", "Name", "Plan", "email"],
            expect![[r#"[ExternalId, Name, Tag("Plan"), Tag("email")]"#]],
        );
    }
}

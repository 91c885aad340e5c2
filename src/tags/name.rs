//! Tag names, parsed once at the edge: past it a [`TagName`] is always valid.
//!
//! Rules:
//! - trimmed; 1 to 128 characters; no control characters;
//! - `Key: Value` (split at the first `": "`) is a key:value tag; key and
//!   value are non-empty and are not `*`; a key:value tag is flat (a `/` in
//!   it is just a character);
//! - otherwise `a/b/c` is a hierarchy of levels, none empty or `*`, at most
//!   the workspace's maximum depth (3 by default); its parents `a` and `a/b`
//!   exist implicitly;
//! - case-sensitive (`VIP` and `vip` are two tags), unless the workspace
//!   requires lowercase names, which makes capitals an error.

use std::fmt;

/// The workspace settings that bear on names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagRules {
    pub lowercase: bool,
    pub max_depth: usize,
}

impl Default for TagRules {
    fn default() -> Self {
        TagRules {
            lowercase: false,
            max_depth: 3,
        }
    }
}

/// Longest tag name, in characters.
pub const MAX_LEN: usize = 128;

/// A valid tag name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagName(String);

/// Why a name is not a valid tag name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagNameError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; the limit is {MAX_LEN}")]
    TooLong(usize),
    #[error("contains a control character")]
    Control,
    #[error("has an empty level (levels are separated by `/`)")]
    EmptyLevel,
    #[error("has {depth} levels; this workspace allows at most {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("has an empty key or value (key:value tags look like `Region: Northeast`)")]
    EmptyKeyOrValue,
    #[error("uses `*`, which is kept for patterns such as `a/*` and `Key: *`")]
    Wildcard,
    #[error("has capital letters; this workspace requires lowercase tags")]
    Capitals,
}

impl TagName {
    /// Trims and validates `raw` under the workspace's rules.
    pub fn parse(raw: &str, rules: TagRules) -> Result<TagName, TagNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(TagNameError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_LEN {
            return Err(TagNameError::TooLong(len));
        }
        if name.chars().any(char::is_control) {
            return Err(TagNameError::Control);
        }
        if rules.lowercase && name.chars().any(char::is_uppercase) {
            return Err(TagNameError::Capitals);
        }
        if let Some((key, value)) = name.split_once(": ") {
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || value.is_empty() {
                return Err(TagNameError::EmptyKeyOrValue);
            }
            if key == "*" || value == "*" {
                return Err(TagNameError::Wildcard);
            }
        } else {
            let levels: Vec<&str> = name.split('/').collect();
            if levels.iter().any(|level| level.trim().is_empty()) {
                return Err(TagNameError::EmptyLevel);
            }
            if levels.contains(&"*") {
                return Err(TagNameError::Wildcard);
            }
            if levels.len() > rules.max_depth {
                return Err(TagNameError::TooDeep {
                    depth: levels.len(),
                    max: rules.max_depth,
                });
            }
        }
        Ok(TagName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Region` and `Northeast` for `Region: Northeast`.
    pub fn key_value(&self) -> Option<(&str, &str)> {
        self.0
            .split_once(": ")
            .map(|(key, value)| (key.trim(), value.trim()))
    }

    /// The hierarchy levels: `["a", "b", "c"]` for `a/b/c`; one element for a flat tag.
    pub fn path(&self) -> Vec<&str> {
        path_of(&self.0)
    }

    /// The names of the implicit parents, nearest last: `["a", "a/b"]` for `a/b/c`.
    pub fn ancestors(&self) -> Vec<String> {
        let path = self.path();
        (1..path.len()).map(|n| path[..n].join("/")).collect()
    }

    /// The name one level up, if any.
    pub fn parent(&self) -> Option<String> {
        self.ancestors().pop()
    }
}

/// The hierarchy levels of a stored tag name (see [`TagName::path`]).
pub fn path_of(name: &str) -> Vec<&str> {
    if name.contains(": ") {
        vec![name]
    } else {
        name.split('/').collect()
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses every name of a request; the error names each bad one and why.
/// Duplicates are dropped, keeping the first.
pub fn parse_all<S: AsRef<str>>(raw: &[S], rules: TagRules) -> Result<Vec<TagName>, String> {
    let mut names: Vec<TagName> = Vec::with_capacity(raw.len());
    let mut problems = Vec::new();
    for item in raw {
        match TagName::parse(item.as_ref(), rules) {
            Ok(name) if !names.contains(&name) => names.push(name),
            Ok(_) => {}
            Err(error) => problems.push(format!("tag {:?} {error}", shorten(item.as_ref()))),
        }
    }
    if problems.is_empty() {
        Ok(names)
    } else {
        Err(problems.join("; "))
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        text.chars().take(40).chain(['…']).collect()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check(input: &str, rules: TagRules, expected: Expect) {
        let actual = match TagName::parse(input, rules) {
            Ok(name) => format!(
                "ok {:?} key={:?} path={:?} ancestors={:?}",
                name.as_str(),
                name.key_value(),
                name.path(),
                name.ancestors()
            ),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&actual);
    }

    fn lower() -> TagRules {
        TagRules {
            lowercase: true,
            ..TagRules::default()
        }
    }

    #[test]
    fn valid_names() {
        let d = TagRules::default();
        check(
            "Hot Lead",
            d,
            expect![[r#"ok "Hot Lead" key=None path=["Hot Lead"] ancestors=[]"#]],
        );
        check(
            "  VIP  ",
            d,
            expect![[r#"ok "VIP" key=None path=["VIP"] ancestors=[]"#]],
        );
        check(
            "Region: Northeast",
            d,
            expect![[
                r#"ok "Region: Northeast" key=Some(("Region", "Northeast")) path=["Region: Northeast"] ancestors=[]"#
            ]],
        );
        check(
            "Note: a: b",
            d,
            expect![[
                r#"ok "Note: a: b" key=Some(("Note", "a: b")) path=["Note: a: b"] ancestors=[]"#
            ]],
        );
        check(
            "sports/football/australia",
            d,
            expect![[
                r#"ok "sports/football/australia" key=None path=["sports", "football", "australia"] ancestors=["sports", "sports/football"]"#
            ]],
        );
        check(
            "Dept: Sales/EMEA",
            d,
            expect![[
                r#"ok "Dept: Sales/EMEA" key=Some(("Dept", "Sales/EMEA")) path=["Dept: Sales/EMEA"] ancestors=[]"#
            ]],
        );
        check(
            "ratio:1",
            d,
            expect![[r#"ok "ratio:1" key=None path=["ratio:1"] ancestors=[]"#]],
        );
        check(
            "5* hotel",
            d,
            expect![[r#"ok "5* hotel" key=None path=["5* hotel"] ancestors=[]"#]],
        );
        check(
            "vip",
            lower(),
            expect![[r#"ok "vip" key=None path=["vip"] ancestors=[]"#]],
        );
        check(
            "été",
            lower(),
            expect![[r#"ok "été" key=None path=["été"] ancestors=[]"#]],
        );
        check(
            &"x".repeat(128),
            d,
            expect![[
                r#"ok "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" key=None path=["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"] ancestors=[]"#
            ]],
        );
    }

    #[test]
    fn invalid_names() {
        let d = TagRules::default();
        check("", d, expect!["error: is empty"]);
        check("   ", d, expect!["error: is empty"]);
        check(
            &"x".repeat(129),
            d,
            expect!["error: is 129 characters long; the limit is 128"],
        );
        check("a\u{7}b", d, expect!["error: contains a control character"]);
        check(
            "line\nbreak",
            d,
            expect!["error: contains a control character"],
        );
        check(
            "a//b",
            d,
            expect!["error: has an empty level (levels are separated by `/`)"],
        );
        check(
            "/a",
            d,
            expect!["error: has an empty level (levels are separated by `/`)"],
        );
        check(
            "a/",
            d,
            expect!["error: has an empty level (levels are separated by `/`)"],
        );
        check(
            "a/ /b",
            d,
            expect!["error: has an empty level (levels are separated by `/`)"],
        );
        check(
            "a/b/c/d",
            d,
            expect!["error: has 4 levels; this workspace allows at most 3"],
        );
        check(
            "Region:  ",
            d,
            expect![[r#"ok "Region:" key=None path=["Region:"] ancestors=[]"#]],
        );
        check(
            ": x",
            d,
            expect![
                "error: has an empty key or value (key:value tags look like `Region: Northeast`)"
            ],
        );
        check(
            "Region: *",
            d,
            expect!["error: uses `*`, which is kept for patterns such as `a/*` and `Key: *`"],
        );
        check(
            "a/*",
            d,
            expect!["error: uses `*`, which is kept for patterns such as `a/*` and `Key: *`"],
        );
        check(
            "VIP",
            lower(),
            expect!["error: has capital letters; this workspace requires lowercase tags"],
        );
        check(
            "Été",
            lower(),
            expect!["error: has capital letters; this workspace requires lowercase tags"],
        );
        check(
            "a/b/c/d/e",
            TagRules {
                lowercase: false,
                max_depth: 5,
            },
            expect![[
                r#"ok "a/b/c/d/e" key=None path=["a", "b", "c", "d", "e"] ancestors=["a", "a/b", "a/b/c", "a/b/c/d"]"#
            ]],
        );
    }

    #[test]
    fn parse_all_names_every_bad_tag() {
        let d = TagRules::default();
        assert_eq!(
            parse_all(&["ok", "a//b", "", "ok"], d),
            Err(
                "tag \"a//b\" has an empty level (levels are separated by `/`); tag \"\" is empty"
                    .into()
            )
        );
        let names = parse_all(&["b", "a", "b"], d).unwrap();
        assert_eq!(
            names.iter().map(TagName::as_str).collect::<Vec<_>>(),
            ["b", "a"]
        );
    }
}

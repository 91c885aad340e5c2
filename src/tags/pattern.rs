//! Tag patterns used by filters (`tagged("a/*")`) and scripts (`has_tag("Key: *")`).
//!
//! A pattern is one of:
//! - `a/*`: every descendant of the hierarchical tag `a` (`a/b`, `a/b/c`), not `a` itself;
//! - `Key: *`: every key:value tag whose key is `Key`, whatever its value;
//! - anything else: exactly that tag name.

/// What a tag pattern selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagPattern<'a> {
    /// Exactly this tag name.
    Exact(&'a str),
    /// Names starting with this prefix, which ends with `/` (`sports/`).
    Descendants(&'a str),
    /// Names starting with this prefix, which ends with `": "` (`Region: `).
    AnyValue(&'a str),
}

impl<'a> TagPattern<'a> {
    /// Reads a pattern; never fails (an unusual pattern is an exact name).
    pub fn parse(pattern: &'a str) -> Self {
        if let Some(prefix) = pattern.strip_suffix('*') {
            if prefix.len() > 1 && prefix.ends_with('/') {
                return TagPattern::Descendants(prefix);
            }
            if prefix.len() > 2 && prefix.ends_with(": ") {
                return TagPattern::AnyValue(prefix);
            }
        }
        TagPattern::Exact(pattern)
    }

    /// Whether the tag `name` is selected by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            TagPattern::Exact(exact) => name == *exact,
            TagPattern::Descendants(prefix) => {
                name.len() > prefix.len() && name.starts_with(prefix)
            }
            TagPattern::AnyValue(prefix) => {
                name.starts_with(prefix) && !name[..prefix.len() - 2].contains(": ")
            }
        }
    }
}

/// Whether the tag `name` is selected by `pattern` (see the module docs).
pub fn tag_matches(pattern: &str, name: &str) -> bool {
    TagPattern::parse(pattern).matches(name)
}

#[cfg(test)]
mod tests {
    use super::tag_matches;

    #[test]
    fn patterns() {
        let cases = [
            ("VIP", "VIP", true),
            ("VIP", "vip", false),
            ("sports/*", "sports/football", true),
            ("sports/*", "sports/football/australia", true),
            ("sports/*", "sports", false),
            ("sports/*", "sportsman", false),
            ("Region: *", "Region: Northeast", true),
            ("Region: *", "Region", false),
            ("Region: *", "Regional: x", false),
            ("*", "*", true),
            ("*", "anything", false),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(tag_matches(pattern, name), expected, "{pattern} vs {name}");
        }
    }
}

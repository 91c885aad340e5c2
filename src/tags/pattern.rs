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

/// Whether `pattern` names the tag `name` itself: exactly, or as the root of
/// a descendants pattern (`a/*` names `a`). A pattern that merely selects
/// the tag among others (`Region: *`) does not: it outlives the tag.
pub fn names_tag(pattern: &str, name: &str) -> bool {
    match TagPattern::parse(pattern) {
        TagPattern::Exact(exact) => exact == name,
        TagPattern::Descendants(prefix) => prefix.strip_suffix('/') == Some(name),
        TagPattern::AnyValue(_) => false,
    }
}

/// Whether the tag `name` is selected by `pattern` (see the module docs).
pub fn tag_matches(pattern: &str, name: &str) -> bool {
    TagPattern::parse(pattern).matches(name)
}

#[cfg(test)]
mod tests {
    use super::{names_tag, tag_matches};

    #[test]
    fn patterns_that_name_a_tag() {
        assert!(names_tag("VIP", "VIP"));
        assert!(names_tag("sports/*", "sports"));
        assert!(!names_tag("sports/*", "sports/football"));
        assert!(!names_tag("Region: *", "Region: EU"));
        assert!(!names_tag("VIP", "vip"));
    }

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

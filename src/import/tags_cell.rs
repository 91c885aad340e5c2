//! The `tags` cell: tags separated by `;`. A tag that holds a `;` writes it
//! as `\;`, and a backslash as `\\` (an export does so, so it re-imports to
//! the same tags); any other backslash is kept as written.

/// The tags of a cell, trimmed, empty pieces dropped.
pub fn split(cell: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let mut piece = String::new();
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some(next @ (';' | '\\')) => {
                    piece.push(next);
                    chars.next();
                }
                _ => piece.push('\\'),
            },
            ';' => tags.push(std::mem::take(&mut piece)),
            c => piece.push(c),
        }
    }
    tags.push(piece);
    tags.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The cell holding `tags`, as [`split`] reads it back.
pub fn join<S: AsRef<str>>(tags: &[S]) -> String {
    let mut cell = String::new();
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            cell.push(';');
        }
        for c in tag.as_ref().chars() {
            if matches!(c, ';' | '\\') {
                cell.push('\\');
            }
            cell.push(c);
        }
    }
    cell
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn separators_and_escapes() {
        assert_eq!(split(" VIP ; ;Plan: Pro;"), ["VIP", "Plan: Pro"]);
        assert_eq!(split(r"a\;b;c"), ["a;b", "c"]);
        assert_eq!(split(r"a\\;b"), [r"a\", "b"]);
        assert_eq!(split(r"C:\dir"), [r"C:\dir"], "other backslashes stay");
        assert_eq!(split(r"end\"), [r"end\"]);
        assert_eq!(join(&["a;b", r"c\", "d"]), r"a\;b;c\\;d");
    }

    proptest! {
        /// Whatever the tags (trimmed, not empty), the cell reads back to them.
        #[test]
        fn join_then_split_gives_the_tags_back(
            tags in proptest::collection::vec("[a-z;\\\\ :/]{0,12}", 0..6)
        ) {
            let tags: Vec<String> = tags
                .into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            prop_assert_eq!(split(&join(&tags)), tags);
        }
    }
}

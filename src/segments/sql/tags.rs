//! Tag patterns as conditions on a row of `tags`, matching names exactly as
//! [`TagPattern::matches`] does.

use sea_orm::sea_query::{Expr, ExprTrait, Func};

use super::{Backend, column};
use crate::tags::pattern::TagPattern;

/// The condition on the tag table aliased `tags` for one pattern, or `None`
/// when the pattern can match no tag name.
pub(super) fn name_matches(backend: Backend, tags: &str, pattern: &str) -> Option<Expr> {
    if backend == Backend::Postgres && pattern.contains('\0') {
        return None; // PostgreSQL text holds no NUL, so no name has one
    }
    let name = column(tags, "name");
    match TagPattern::parse(pattern) {
        TagPattern::Exact(exact) => Some(name.eq(exact)),
        TagPattern::Descendants(prefix) => {
            let length = char_count(prefix)?;
            Some(
                starts_with(name.clone(), prefix, length).and(
                    Func::cust("length")
                        .arg(name)
                        .gt(Expr::Constant(length.into())),
                ),
            )
        }
        TagPattern::AnyValue(prefix) => {
            let key = prefix.strip_suffix(": ").unwrap_or(prefix);
            if key.contains(": ") {
                return None; // see `TagPattern::matches`: such a key is never the first
            }
            Some(starts_with(name, prefix, char_count(prefix)?))
        }
    }
}

/// `substr(text, 1, length) = prefix`: case-sensitive, unlike SQLite's
/// `LIKE`. The length is an `INTEGER` constant, as PostgreSQL's `substr` wants.
fn starts_with(text: Expr, prefix: &str, length: i32) -> Expr {
    Func::cust("substr")
        .arg(text)
        .arg(Expr::Constant(1i32.into()))
        .arg(Expr::Constant(length.into()))
        .eq(prefix)
}

/// Characters in `text`, as `substr` and `length` count them.
fn char_count(text: &str) -> Option<i32> {
    i32::try_from(text.chars().count()).ok()
}

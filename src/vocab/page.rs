//! Keyset paging over rows ordered by id.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

/// Largest page a client may ask for.
pub const MAX_PAGE: u64 = 100;
/// Page size when the client does not say.
pub const DEFAULT_PAGE: u64 = 20;

/// One page to read: at most `first` rows with id greater than `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub first: u64,
    pub after: Option<i64>,
}

/// Rows of one page, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub has_next: bool,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `LIMIT first + 1`.
    pub fn from_overfetch(mut rows: Vec<T>, first: u64) -> Self {
        let has_next = rows.len() as u64 > first;
        rows.truncate(first as usize);
        Page { rows, has_next }
    }
}

/// Which end of a list comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    OldestFirst,
    NewestFirst,
}

/// Reads one page of `select`, keyset-paged on its id column `id` (the
/// cursor is the id of the last row seen).
pub async fn fetch<E: EntityTrait>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    id: impl ColumnTrait,
    direction: Direction,
    page: PageRequest,
) -> Result<Page<E::Model>, DbErr> {
    let rows = paged(select, id, direction, page).all(db).await?;
    Ok(Page::from_overfetch(rows, page.first))
}

/// [`fetch`] for the models the SQLite reader decodes (users, accounts,
/// tags): on a SQLite file, one hop to the reader instead of one per row.
pub async fn fetch_read<C, E>(
    db: &C,
    select: Select<E>,
    id: impl ColumnTrait,
    direction: Direction,
    page: PageRequest,
) -> Result<Page<E::Model>, DbErr>
where
    C: ConnectionTrait + 'static,
    E: EntityTrait,
    E::Model: crate::sqlite_read::FromRow,
{
    let rows = crate::sqlite_read::all(db, paged(select, id, direction, page)).await?;
    Ok(Page::from_overfetch(rows, page.first))
}

/// `select` past the cursor, in order, one row more than the page (to tell
/// whether another page follows).
fn paged<E: EntityTrait>(
    select: Select<E>,
    id: impl ColumnTrait,
    direction: Direction,
    page: PageRequest,
) -> Select<E> {
    let select = match (direction, page.after) {
        (Direction::OldestFirst, Some(after)) => select.filter(id.gt(after)),
        (Direction::NewestFirst, Some(after)) => select.filter(id.lt(after)),
        (_, None) => select,
    };
    let select = match direction {
        Direction::OldestFirst => select.order_by_asc(id),
        Direction::NewestFirst => select.order_by_desc(id),
    };
    select.limit(page.first + 1)
}

/// The longest `search` string (users, accounts, tags) accepted, in
/// characters. A search is a `LIKE` pattern; SQLite refuses patterns of
/// 50,000 bytes ("LIKE or GLOB pattern too complex"), and no name, email or
/// tag is this long (tag names have at most 128 characters).
pub const MAX_SEARCH: usize = 200;

/// Checks a `search` argument: at most [`MAX_SEARCH`] characters. The
/// message says what is wrong.
pub fn check_search(search: Option<&str>) -> Result<(), String> {
    match search {
        Some(text) if text.chars().nth(MAX_SEARCH).is_some() => Err(format!(
            "search is too long: at most {MAX_SEARCH} characters"
        )),
        _ => Ok(()),
    }
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped
/// (use with `ESCAPE '\'`), lowercased for case-insensitive search.
pub fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overfetch_tells_next() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2);
        assert_eq!(page.rows, vec![1, 2]);
        assert!(page.has_next);
        let page = Page::from_overfetch(vec![1, 2], 2);
        assert!(!page.has_next);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Ab"), "%ab%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}

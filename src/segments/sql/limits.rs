//! The compiler on the largest filters the limits allow: it builds and
//! writes the statement on a small stack, and SQLite and PostgreSQL both
//! run it (no "Expression tree is too large", no "too many SQL variables").

use std::time::Instant;

use chrono::{TimeZone, Utc};
use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement, SqliteQueryBuilder};

use super::agreement::db::Db;
use super::{Backend, SqlContext, select_ids};
use crate::segments::filter::limits::{chain, on_small_stack, widest, worst_user_filters};
use crate::segments::filter::{Filter, MAX_TERMS, SubjectKind};

type Lookup = Box<dyn Fn(&str) -> Option<Filter> + Send + Sync>;

/// The largest filters: (name, kind, text, segments).
fn largest() -> Vec<(&'static str, SubjectKind, String, Lookup)> {
    let none = || -> Lookup { Box::new(|_: &str| None) };
    let mut cases: Vec<(&'static str, SubjectKind, String, Lookup)> = worst_user_filters()
        .into_iter()
        .map(|(name, text)| (name, SubjectKind::User, text, none()))
        .collect();
    cases.push((
        "any_user chain",
        SubjectKind::Account,
        chain(MAX_TERMS / 2, " or ", |i| {
            format!("any_user(not tagged(\"t{i}\"))")
        }),
        none(),
    ));
    cases.push((
        "widest expansion",
        SubjectKind::User,
        r#"in_segment("W10")"#.into(),
        Box::new(widest()),
    ));
    cases
}

/// The statement, the length of its SQL and the count of its bound values
/// on `backend`, built and written on a small stack.
fn build(
    name: &'static str,
    kind: SubjectKind,
    text: String,
    lookup: Lookup,
    backend: Backend,
) -> (SelectStatement, usize, usize) {
    on_small_stack(name, move || {
        let filter = Filter::parse_with_segments(&text, kind, None, &lookup)
            .unwrap_or_else(|errors| panic!("{name}: {errors:?}"));
        let ctx = SqlContext {
            workspace_id: 1,
            now: Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap(),
            backend,
            segments: &lookup,
        };
        let statement = select_ids(&filter, &ctx);
        let (sql, values) = match backend {
            Backend::Sqlite => statement.build(SqliteQueryBuilder),
            Backend::Postgres => statement.build(PostgresQueryBuilder),
        };
        (statement, sql.len(), values.0.len())
    })
}

fn run(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = rt.block_on(Db::open(backend)) else {
        eprintln!("{backend:?}: skipped (TAGSMITH_TEST_DATABASE_URL is not set)");
        return;
    };
    let mut failures = Vec::new();
    for (name, kind, text, lookup) in largest() {
        let started = Instant::now();
        let (statement, sql, values) = build(name, kind, text, lookup, backend);
        let built = started.elapsed();
        let started = Instant::now();
        let result = rt.block_on(db.ids(&statement));
        eprintln!(
            "{backend:?} {name}: {sql} bytes of SQL, {values} values, built in {built:?}, \
             ran in {:?}",
            started.elapsed()
        );
        if let Err(error) = result {
            failures.push(format!("{name}: {error}"));
        }
    }
    rt.block_on(db.close());
    assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));
}

#[test]
fn the_largest_filters_run_on_sqlite() {
    run(Backend::Sqlite);
}

#[test]
fn the_largest_filters_run_on_postgres() {
    run(Backend::Postgres);
}

//! Seeding: the users, accounts and tags every run starts from, and the
//! data of the segment scenarios.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tagsmith::db;
use tagsmith::subjects::SubjectKind;
use tagsmith::tagging::assign::{Actor, apply_to_targets};
use tagsmith::tags::write::Target;
use tagsmith::tags::{Op, Source};

use crate::{automation::wait_drained, segments::count_rows};

/// `ANALYZE` of the tables the harness seeds, on PostgreSQL. Not the
/// outbox: its statistics are left to autovacuum and the worker, as in
/// production. (With or without statistics taken while it was empty, the
/// worker's claim stalled for minutes once `bulk-write` queued 100,000
/// events, on 2026-11-27; see BENCHMARKS.md, finding 1.)
pub(crate) const SEEDED_TABLES: &str = "ANALYZE users, accounts, tags, tag_assignments, events";

/// How many seeded tags there are (`Seed 0` to `Seed 19`); every user has
/// three of them.
pub(crate) const SEED_TAGS: i64 = 20;

/// Inserts `n / 10` accounts (at least one; `Account I`), then `n` users
/// (`userI@example.com`, the account `I % accounts`, `last_seen_at` spread
/// over the last 90 days) with set-based insert-selects of 100,000 rows
/// each, then gives each user three of [`SEED_TAGS`] tags (`Seed (id + k)
/// % 20` for k = 0, 7, 13) with insert-selects (assignments only: no
/// history or outbox rows, as an import of existing data would leave them);
/// returns the users' ids.
pub(crate) async fn seed(conn: &DatabaseConnection, n: usize) -> Vec<i64> {
    let now = chrono::Utc::now();
    let backend = conn.get_database_backend();
    let accounts = (n / 10).max(1) as i64;
    let series = |from: &str, to: &str| match backend {
        DbBackend::Postgres => format!("generate_series({from}::bigint, {to}::bigint) AS n(i)"),
        _ => format!(
            "(WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) SELECT i FROM n) AS n"
        ),
    };
    // Numbered placeholders: SQLite (through sqlx) reads `$N` too.
    let p = |i: usize| format!("${i}");
    let stamp = match backend {
        DbBackend::Postgres => sea_orm::Value::from(now),
        _ => sea_orm::Value::from(sqlite_instant(now)),
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO accounts (workspace_id, external_id, name, attributes, created_at, updated_at) \
             SELECT 1, 'acct' || i, 'Account ' || i, '{{}}', {now}, {now} FROM {series} ORDER BY i",
            now = p(1),
            series = series("1", &accounts.to_string()),
        ),
        [now.into()],
    ))
    .await
    .expect("seed accounts");
    let first_account = count_rows(conn, "SELECT MIN(id) FROM accounts").await;
    for start in (0..n).step_by(100_000) {
        let end = (start + 100_000).min(n);
        let last_seen = match backend {
            DbBackend::Postgres => {
                format!(
                    "{}::timestamptz - ((i * 7919) % 7776000) * interval '1 second'",
                    p(1)
                )
            }
            _ => format!(
                "strftime('%Y-%m-%dT%H:%M:%f+00:00', {}, '-' || ((i * 7919) % 7776000) || ' seconds')",
                p(1)
            ),
        };
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO users (workspace_id, email, account_id, attributes, last_seen_at, created_at, updated_at) \
                 SELECT 1, 'user' || i || '@example.com', {first_account} + i % {accounts}, '{{}}', {last_seen}, {now}, {now} \
                 FROM {series} ORDER BY i",
                now = p(2),
                series = series(&start.to_string(), &(end - 1).to_string()),
            ),
            [stamp.clone(), now.into()],
        );
        conn.execute_raw(statement).await.expect("seed");
    }
    let values = (0..SEED_TAGS)
        .map(|i| format!("(1, 'Seed {i}', {})", p(1)))
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!("INSERT INTO tags (workspace_id, name, created_at) VALUES {values}"),
        [now.into()],
    ))
    .await
    .expect("seed tags");
    let first_tag = count_rows(conn, "SELECT MIN(id) FROM tags WHERE name = 'Seed 0'").await;
    for k in [0, 7, 13] {
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO tag_assignments (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
                 SELECT 1, {first_tag} + (id + {k}) % {SEED_TAGS}, 'USER', id, 'IMPORT', 'bench seed', {} \
                 FROM users WHERE workspace_id = 1",
                p(1)
            ),
            [now.into()],
        ))
        .await
        .expect("seed tag assignments");
    }
    if backend == DbBackend::Postgres {
        conn.execute_unprepared(SEEDED_TABLES)
            .await
            .expect("analyze");
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id FROM users ORDER BY id",
        ))
        .await
        .expect("ids");
    rows.into_iter()
        .map(|row| row.try_get_by_index::<i64>(0).expect("id"))
        .collect()
}

/// An instant as SQLite's date functions read it (UTC, whole seconds).
pub(crate) fn sqlite_instant(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// What the segment scenarios filter on: "Plan: Pro" on every tenth user, a
/// "login" event for two users in three and a "page_view" for every user,
/// spread over the last 90 days. The tag is created through the write path
/// on one user and given to the others with one insert-select (no history
/// or outbox rows: on PostgreSQL, 100,000 outbox rows arriving at once
/// after the worker polled an empty outbox make its claim crawl, see
/// BENCHMARKS.md).
pub(crate) async fn seed_segment_data(conn: &DatabaseConnection) {
    let backend = conn.get_database_backend();
    let first = 10i64;
    let txn = db::begin_write(conn).await.expect("txn");
    apply_to_targets(
        &txn,
        1,
        &[(SubjectKind::User, Target::Ids(vec![first]))],
        &[tagsmith::tags::name::TagName::parse("Plan: Pro", Default::default()).expect("a name")],
        Op::Added,
        Actor {
            source: Source::Bulk,
            name: Some("bench seed"),
            cause: tagsmith::tags::Cause::None,
            depth: 0,
        },
        &tagsmith::time::Clock::system(),
    )
    .await
    .expect("Plan: Pro");
    txn.commit().await.expect("commit");
    let tag: i64 = conn
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT id FROM tags WHERE workspace_id = 1 AND name = 'Plan: Pro' AND deleted_at IS NULL",
        ))
        .await
        .expect("tag")
        .expect("the tag")
        .try_get_by_index(0)
        .expect("id");
    let placeholders = match backend {
        DbBackend::Postgres => ["$1", "$2", "$3"],
        _ => ["?", "?", "?"],
    };
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO tag_assignments (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
             SELECT 1, {}, 'USER', id, 'BULK', 'bench seed', {} FROM users \
             WHERE workspace_id = 1 AND id % 10 = 0 AND id <> {}",
            placeholders[0], placeholders[1], placeholders[2]
        ),
        [tag.into(), chrono::Utc::now().into(), first.into()],
    ))
    .await
    .expect("Plan: Pro assignments");
    let now = chrono::Utc::now();
    for (name, multiplier, which) in [
        ("login", 104_729, "id % 3 <> 0"),
        ("page_view", 15_485_863, "1 = 1"),
    ] {
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO events (workspace_id, subject_kind, subject_id, name, at, properties) \
                     SELECT 1, 'USER', id, $1, $2::timestamptz - ((id * {multiplier}) % 7776000) * interval '1 second', '{{}}' \
                     FROM users WHERE workspace_id = 1 AND {which}"
                ),
                [name.into(), now.into()],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                format!(
                    "INSERT INTO events (workspace_id, subject_kind, subject_id, name, at, properties) \
                     SELECT 1, 'USER', id, ?, strftime('%Y-%m-%dT%H:%M:%f+00:00', ?, '-' || ((id * {multiplier}) % 7776000) || ' seconds'), '{{}}' \
                     FROM users WHERE workspace_id = 1 AND {which}"
                ),
                [name.into(), sqlite_instant(now).into()],
            ),
        };
        conn.execute_raw(statement).await.expect("events");
    }
    if backend == DbBackend::Postgres {
        // What autovacuum does soon after a bulk load; SQLite is left as the
        // server leaves it (no ANALYZE).
        conn.execute_unprepared(SEEDED_TABLES)
            .await
            .expect("analyze");
    }
    wait_drained(conn).await;
}

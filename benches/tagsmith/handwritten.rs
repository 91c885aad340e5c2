//! The hand-written SQL baseline: the reads and writes of the comparison
//! scenarios as a person would write them with `sqlx` (no ORM, no GraphQL),
//! served as JSON over HTTP by a minimal axum app in the same process, so the
//! one load client drives it exactly as it drives tagsmith and PostGraphile.
//!
//! It answers with the JSON shape of the GraphQL response (`{"data": ...}`),
//! so both serialize the same payload. It does not authenticate (tagsmith
//! checks an API key on every request): a floor, not a rival.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};
use tokio::sync::Mutex;

/// The workspace every seeded row belongs to.
const WORKSPACE: i64 = 1;

/// A pool of either database; [`on_pool!`] runs the same code on both.
#[derive(Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per database, `$p` bound to the concrete pool.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

#[derive(Clone)]
struct App {
    pool: Pool,
    /// SQLite has one writer: writers queue here (as tagsmith's do) rather
    /// than sleep in SQLite's busy handler.
    writer: Arc<Mutex<()>>,
}

/// Opens its own pool on the benchmark's database (16 connections, as the
/// server's; SQLite in WAL mode with the server's pragmas) and serves the
/// baseline on a free port; returns the base URL (`http://127.0.0.1:P`).
pub async fn start(url: &str) -> String {
    let pool = open(url, 16).await;
    let app = App {
        pool,
        writer: Arc::default(),
    };
    let router = Router::new()
        .route("/list", post(list))
        .route("/user", post(user))
        .route("/add-tag", post(add_tag))
        .route("/count-tag", post(count_tag))
        .route("/count", post(count_filter))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// A pool of `connections` on the benchmark's database (SQLite in WAL mode
/// with the server's pragmas).
async fn open(url: &str, connections: u32) -> Pool {
    if url.starts_with("postgres") {
        Pool::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(connections)
                .connect(url)
                .await
                .expect("hand-written SQL: connect to PostgreSQL"),
        )
    } else {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        let options: SqliteConnectOptions = url.parse().expect("a SQLite URL");
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30))
            .foreign_keys(true);
        Pool::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(connections)
                .connect_with(options)
                .await
                .expect("hand-written SQL: open SQLite"),
        )
    }
}

fn global_id(kind: &str, id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{kind}:{id}"))
}

/// `$1, $2, ...` for `n` values after the first `from - 1`.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Users as the GraphQL query selects them: `id email tags { name }
/// account { name }`, tags in name order.
async fn users_json(pool: &Pool, users: Vec<(i64, String, Option<String>)>) -> Vec<Value> {
    let mut tags: std::collections::HashMap<i64, Vec<Value>> = Default::default();
    if !users.is_empty() {
        let sql = format!(
            "SELECT ta.subject_id, t.name FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id \
             WHERE ta.subject_kind = 'USER' AND ta.subject_id IN ({}) AND t.deleted_at IS NULL \
             ORDER BY ta.subject_id, t.name",
            placeholders(1, users.len())
        );
        let rows: Vec<(i64, String)> = on_pool!(pool, p => {
            let mut query = sqlx::query_as(AssertSqlSafe(sql));
            for (id, _, _) in &users {
                query = query.bind(*id);
            }
            query.fetch_all(p).await.expect("tags of users")
        });
        for (subject, name) in rows {
            tags.entry(subject)
                .or_default()
                .push(json!({ "name": name }));
        }
    }
    users
        .into_iter()
        .map(|(id, email, account)| {
            json!({
                "id": global_id("User", id),
                "email": email,
                "tags": tags.remove(&id).unwrap_or_default(),
                "account": account.map(|name| json!({ "name": name })),
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ListRequest {
    first: i64,
}

/// The first `first` users of the workspace with their tags and account.
async fn list(State(app): State<App>, Json(request): Json<ListRequest>) -> Json<Value> {
    const SQL: &str = "SELECT u.id, u.email, a.name FROM users u \
                       LEFT JOIN accounts a ON a.id = u.account_id \
                       WHERE u.workspace_id = $1 ORDER BY u.id LIMIT $2";
    let users: Vec<(i64, String, Option<String>)> = on_pool!(&app.pool, p => {
        sqlx::query_as(SQL)
            .bind(WORKSPACE)
            .bind(request.first)
            .fetch_all(p)
            .await
            .expect("users")
    });
    let nodes = users_json(&app.pool, users).await;
    Json(json!({ "data": { "users": { "nodes": nodes } } }))
}

#[derive(Deserialize)]
struct UserRequest {
    id: i64,
}

/// One user by id, with tags and account.
async fn user(State(app): State<App>, Json(request): Json<UserRequest>) -> Json<Value> {
    const SQL: &str = "SELECT u.id, u.email, a.name FROM users u \
                       LEFT JOIN accounts a ON a.id = u.account_id \
                       WHERE u.workspace_id = $1 AND u.id = $2";
    let users: Vec<(i64, String, Option<String>)> = on_pool!(&app.pool, p => {
        sqlx::query_as(SQL)
            .bind(WORKSPACE)
            .bind(request.id)
            .fetch_all(p)
            .await
            .expect("user")
    });
    let user = users_json(&app.pool, users).await.pop();
    Json(json!({ "data": { "user": user } }))
}

#[derive(Deserialize)]
struct AddTagRequest {
    id: i64,
    tag: String,
}

/// Adds one tag to one user in one transaction, writing what tagsmith
/// writes for a real change: the tag (created on first use), the
/// assignment, the history row and the outbox event (and, on PostgreSQL,
/// the change feed's `pg_notify`). A tag already present writes nothing.
async fn add_tag(State(app): State<App>, Json(request): Json<AddTagRequest>) -> Json<Value> {
    const FIND_TAG: &str =
        "SELECT id FROM tags WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL";
    const CREATE_TAG: &str = "INSERT INTO tags (workspace_id, name, created_at) VALUES ($1, $2, $3) \
                              ON CONFLICT DO NOTHING RETURNING id";
    const ASSIGN: &str = "INSERT INTO tag_assignments \
                          (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
                          SELECT $1, $2, 'USER', id, 'MANUAL', 'bench', $3 FROM users \
                          WHERE workspace_id = $1 AND id = $4 ON CONFLICT DO NOTHING";
    const HISTORY: &str = "INSERT INTO tag_changes \
                           (workspace_id, op, tag_id, subject_kind, subject_id, source, actor, at) \
                           VALUES ($1, 'ADDED', $2, 'USER', $3, 'MANUAL', 'bench', $4) RETURNING id";
    const OUTBOX: &str = "INSERT INTO automation_events (workspace_id, kind, subject_kind, \
                          subject_id, tag_id, change_id, depth, status, attempts, run_at, created_at) \
                          VALUES ($1, 'TAG_ADDED', 'USER', $2, $3, $4, 0, 'pending', 0, $5, $5)";
    let now = chrono::Utc::now();
    let changed = on_pool!(&app.pool, p => {
        let _turn = match &app.pool {
            Pool::Sqlite(_) => Some(app.writer.lock().await),
            Pool::Postgres(_) => None,
        };
        let mut txn = match &app.pool {
            Pool::Sqlite(_) => p.begin_with("BEGIN IMMEDIATE").await,
            Pool::Postgres(_) => p.begin().await,
        }
        .expect("begin");
        let mut tag: Option<i64> = sqlx::query_scalar(FIND_TAG)
            .bind(WORKSPACE)
            .bind(&request.tag)
            .fetch_optional(&mut *txn)
            .await
            .expect("find tag");
        if tag.is_none() {
            tag = sqlx::query_scalar(CREATE_TAG)
                .bind(WORKSPACE)
                .bind(&request.tag)
                .bind(now)
                .fetch_optional(&mut *txn)
                .await
                .expect("create tag");
        }
        let tag = match tag {
            Some(tag) => tag,
            // Another writer created it meanwhile.
            None => sqlx::query_scalar(FIND_TAG)
                .bind(WORKSPACE)
                .bind(&request.tag)
                .fetch_one(&mut *txn)
                .await
                .expect("find tag"),
        };
        let assigned = sqlx::query(ASSIGN)
            .bind(WORKSPACE)
            .bind(tag)
            .bind(now)
            .bind(request.id)
            .execute(&mut *txn)
            .await
            .expect("assign")
            .rows_affected();
        if assigned == 1 {
            let change: i64 = sqlx::query_scalar(HISTORY)
                .bind(WORKSPACE)
                .bind(tag)
                .bind(request.id)
                .bind(now)
                .fetch_one(&mut *txn)
                .await
                .expect("history");
            sqlx::query(OUTBOX)
                .bind(WORKSPACE)
                .bind(request.id)
                .bind(tag)
                .bind(change)
                .bind(now)
                .execute(&mut *txn)
                .await
                .expect("outbox");
            if matches!(app.pool, Pool::Postgres(_)) {
                sqlx::query("SELECT pg_notify('tagsmith_changes', $1)")
                    .bind(format!("{tag}:{}", change - 1))
                    .execute(&mut *txn)
                    .await
                    .expect("notify");
            }
        }
        txn.commit().await.expect("commit");
        assigned == 1
    });
    Json(json!({ "data": { "addTags": { "changed": changed } } }))
}

#[derive(Deserialize)]
struct CountTagRequest {
    tag: String,
}

/// How many users carry a tag.
async fn count_tag(State(app): State<App>, Json(request): Json<CountTagRequest>) -> Json<Value> {
    const SQL: &str = "SELECT COUNT(*) FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id \
                       WHERE t.workspace_id = $1 AND t.name = $2 AND t.deleted_at IS NULL \
                       AND ta.subject_kind = 'USER'";
    let count: i64 = on_pool!(&app.pool, p => {
        sqlx::query_scalar(SQL)
            .bind(WORKSPACE)
            .bind(&request.tag)
            .fetch_one(p)
            .await
            .expect("count by tag")
    });
    Json(json!({ "data": { "tag": { "userCount": count } } }))
}

/// The hand-written count of `tagged("Plan: Pro") and last_seen_at > now -
/// 30d and events("login", 30d) >= 1` (the statement BENCHMARKS.md shows).
async fn count_filter(State(app): State<App>) -> Json<Value> {
    const SQL: &str = "SELECT COUNT(*) FROM users u \
        WHERE u.workspace_id = $1 \
        AND EXISTS (SELECT 1 FROM tag_assignments ta JOIN tags t ON t.id = ta.tag_id \
                    WHERE ta.subject_kind = 'USER' AND ta.subject_id = u.id \
                    AND t.workspace_id = $1 AND t.deleted_at IS NULL AND t.name = 'Plan: Pro') \
        AND u.last_seen_at > $2 \
        AND EXISTS (SELECT 1 FROM events e \
                    WHERE e.subject_kind = 'USER' AND e.subject_id = u.id \
                    AND e.name = 'login' AND e.at >= $2)";
    let since = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let count: i64 = on_pool!(&app.pool, p => {
        sqlx::query_scalar(SQL)
            .bind(WORKSPACE)
            .bind(since)
            .fetch_one(p)
            .await
            .expect("count")
    });
    Json(json!({ "data": { "segment": { "memberCount": count } } }))
}

/// Rows per multi-row `INSERT` of the hand-written import.
const IMPORT_CHUNK: usize = 1_000;

/// A CSV row as the hand-written import writes it.
struct ImportRow {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    /// `Column: value` of the other non-empty cells.
    tags: Vec<String>,
}

/// The hand-written import of a users CSV (`email`, `first_name`,
/// `last_name`, every other column a `Column: value` tag), streamed with the
/// `csv` crate: for each `batch` rows, one transaction with multi-row
/// upserts of the users by email (`INSERT ... ON CONFLICT (workspace_id,
/// email) DO UPDATE ... RETURNING id, email`, 1,000 rows per statement),
/// the tags found or created (their ids cached by name), and multi-row
/// inserts of the assignments (`ON CONFLICT DO NOTHING`). It writes no
/// history and no outbox events, checks nothing the CSV parser does not, and
/// expects each email once. Returns the rows written.
pub async fn import(url: &str, workspace: i64, file: &std::path::Path, batch: usize) -> u64 {
    let pool = open(url, 1).await;
    let mut reader = csv::Reader::from_path(file).expect("open the CSV");
    let header = reader.headers().expect("a header").clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let email = column("email").expect("an email column");
    let (first, last) = (column("first_name"), column("last_name"));
    let tag_columns: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| ![Some(email), first, last].contains(&Some(*i)))
        .map(|(i, name)| (i, name.trim().to_owned()))
        .collect();
    let mut tags = std::collections::HashMap::new();
    let mut rows = Vec::with_capacity(batch);
    let mut written = 0;
    for record in reader.records() {
        let record = record.expect("a CSV record");
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        rows.push(ImportRow {
            email: cell(Some(email)).expect("an email"),
            first_name: cell(first),
            last_name: cell(last),
            tags: tag_columns
                .iter()
                .filter_map(|(i, name)| cell(Some(*i)).map(|value| format!("{name}: {value}")))
                .collect(),
        });
        if rows.len() == batch {
            written += import_batch(&pool, workspace, &rows, &mut tags).await;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        written += import_batch(&pool, workspace, &rows, &mut tags).await;
    }
    written
}

/// One batch of the hand-written import, in one transaction.
async fn import_batch(
    pool: &Pool,
    workspace: i64,
    rows: &[ImportRow],
    tags: &mut std::collections::HashMap<String, i64>,
) -> u64 {
    const FIND_TAG: &str =
        "SELECT id FROM tags WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL";
    const CREATE_TAG: &str =
        "INSERT INTO tags (workspace_id, name, created_at) VALUES ($1, $2, $3) RETURNING id";
    let now = chrono::Utc::now();
    on_pool!(pool, p => {
        let mut txn = match pool {
            Pool::Sqlite(_) => p.begin_with("BEGIN IMMEDIATE").await,
            Pool::Postgres(_) => p.begin().await,
        }
        .expect("begin");
        let mut ids = std::collections::HashMap::with_capacity(rows.len());
        for chunk in rows.chunks(IMPORT_CHUNK) {
            let values = (0..chunk.len())
                .map(|i| format!("($1, ${}, ${}, ${}, '{{}}', $2, $2)", 3 + 3 * i, 4 + 3 * i, 5 + 3 * i))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO users (workspace_id, email, first_name, last_name, attributes, created_at, updated_at) \
                 VALUES {values} ON CONFLICT (workspace_id, email) DO UPDATE SET \
                 first_name = excluded.first_name, last_name = excluded.last_name, updated_at = excluded.updated_at \
                 RETURNING id, email"
            );
            let mut query = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql))
                .bind(workspace)
                .bind(now);
            for row in chunk {
                query = query
                    .bind(row.email.as_str())
                    .bind(row.first_name.as_deref())
                    .bind(row.last_name.as_deref());
            }
            ids.extend(
                query
                    .fetch_all(&mut *txn)
                    .await
                    .expect("upsert users")
                    .into_iter()
                    .map(|(id, email)| (email, id)),
            );
        }
        for name in rows.iter().flat_map(|row| &row.tags) {
            if tags.contains_key(name) {
                continue;
            }
            let found: Option<i64> = sqlx::query_scalar(FIND_TAG)
                .bind(workspace)
                .bind(name.as_str())
                .fetch_optional(&mut *txn)
                .await
                .expect("find tag");
            let id = match found {
                Some(id) => id,
                None => sqlx::query_scalar(CREATE_TAG)
                    .bind(workspace)
                    .bind(name.as_str())
                    .bind(now)
                    .fetch_one(&mut *txn)
                    .await
                    .expect("create tag"),
            };
            tags.insert(name.clone(), id);
        }
        let known = &*tags;
        let pairs: Vec<(i64, i64)> = rows
            .iter()
            .flat_map(|row| {
                let user = ids[&row.email];
                row.tags.iter().map(move |tag| (known[tag], user))
            })
            .collect();
        for chunk in pairs.chunks(IMPORT_CHUNK) {
            let values = (0..chunk.len())
                .map(|i| format!("($1, ${}, 'USER', ${}, 'IMPORT', 'bench import', $2)", 3 + 2 * i, 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO tag_assignments (workspace_id, tag_id, subject_kind, subject_id, source, actor, at) \
                 VALUES {values} ON CONFLICT DO NOTHING"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace).bind(now);
            for (tag, user) in chunk {
                query = query.bind(*tag).bind(*user);
            }
            query.execute(&mut *txn).await.expect("assign tags");
        }
        txn.commit().await.expect("commit");
    });
    rows.len() as u64
}

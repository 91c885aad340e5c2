//! SQLite reads without the driver's hop per row.
//!
//! sqlx runs each SQLite connection on a thread of its own and sends every
//! row of a result to the async side over a channel: a page of 50 users
//! with their accounts and 150 tags costs hundreds of thread wake-ups, and
//! the profile of the list benchmark showed those wake-ups (kernel task
//! switches, allocator) as the largest part of the server's time
//! (BENCHMARKS.md, "SQLite read path"). The hot reads (pages and batches of
//! users, accounts and tags) therefore take another way when the database
//! is a SQLite file: the same statement, built by SeaORM, runs on a pooled
//! read-only `rusqlite` connection inside one blocking task, which decodes
//! every row and hands back the models at once: one hop per statement (or
//! per group of statements) instead of one per row, and statements cached
//! per connection.
//!
//! Writes never go this way, and neither do reads inside a transaction
//! (they must see its own writes): [`reader`] answers only for a plain
//! [`DatabaseConnection`] to a SQLite file. In WAL mode a reader sees
//! every committed write at once, as a pooled sqlx connection does.
//!
//! Elsewhere (PostgreSQL, a transaction, an in-memory database) the same
//! models are read through SeaORM, but decoded by column index
//! ([`FromRow::from_result`]) rather than by SeaORM's derived decoder, which
//! builds each column's name as a new string and looks it up by hashing:
//! decoding took 10 % of a listed page's time on PostgreSQL (BENCHMARKS.md,
//! "PostgreSQL read path").

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use entity::{account, tag, user};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Row};
use sea_orm::sea_query::Value;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryResult, QueryTrait,
    RuntimeErr, Select, Statement,
};

/// Idle connections kept per database file.
const IDLE: usize = 8;
/// How long a reader waits for a lock (a checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Read-only connections to one SQLite file.
pub struct Reader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Told the SQL of every statement run (tests count statements).
    observer: Mutex<Option<Observer>>,
}

/// What [`observe`] calls with each statement's SQL.
pub type Observer = Arc<dyn Fn(&str) + Send + Sync>;

/// A reader's connection, lent to one [`Reader::run`].
pub struct ReadConn<'a> {
    conn: &'a Connection,
    observer: Option<Observer>,
}

/// One reader per database file, shared by every connection pool on it;
/// `None` for a name that is no file (an in-memory database), remembered so
/// that its reads do not ask the file system each time.
static READERS: LazyLock<Mutex<HashMap<PathBuf, Option<Arc<Reader>>>>> =
    LazyLock::new(Default::default);

/// The reader for `db` when it is a plain connection (not a transaction)
/// to a SQLite file; `None` otherwise (PostgreSQL, in-memory SQLite, a
/// transaction), where SeaORM reads as usual.
pub fn reader<C: ConnectionTrait + 'static>(db: &C) -> Option<Arc<Reader>> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let db = (db as &dyn Any).downcast_ref::<DatabaseConnection>()?;
    let options = db.get_sqlite_connection_pool().connect_options();
    for_path(options.get_filename())
}

fn for_path(path: &Path) -> Option<Arc<Reader>> {
    let mut readers = READERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(reader) = readers.get(path) {
        return reader.clone();
    }
    // An in-memory database has a name that is no file: only its own
    // pool can reach it. (The pool has created its file by the time it is
    // connected, so a file database is a file here.)
    let reader = path.is_file().then(|| {
        Arc::new(Reader {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            observer: Mutex::new(None),
        })
    });
    readers.insert(path.to_owned(), reader.clone());
    reader
}

/// Calls `observer` with the SQL of every statement the reader runs on
/// `db`'s file (as SeaORM's metric callback does for its own); nothing
/// when `db` has no reader.
pub fn observe(db: &DatabaseConnection, observer: impl Fn(&str) + Send + Sync + 'static) {
    if let Some(reader) = reader(db) {
        *reader.observer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(observer));
    }
}

impl Reader {
    fn open(path: &Path) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// Runs `f` on one of the file's read-only connections, on a blocking
    /// thread: one hop there and back, whatever `f` reads.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbErr>
    where
        T: Send + 'static,
        F: FnOnce(&ReadConn<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let this = Arc::clone(self);
        let answer = tokio::task::spawn_blocking(move || {
            let idle = this.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => Self::open(&this.path)?,
            };
            let observer = this
                .observer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let out = f(&ReadConn {
                conn: &conn,
                observer,
            });
            let mut idle = this.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| DbErr::Query(RuntimeErr::Internal(format!("SQLite reader: {e}"))))?;
        answer.map_err(|e| DbErr::Query(RuntimeErr::Internal(format!("SQLite reader: {e}"))))
    }
}

/// A model read from a row of its table's `SELECT *` (SeaORM selects the
/// columns in the order the model declares its fields), from `at` on.
pub trait FromRow: Sized + Send + 'static {
    /// From the SQLite reader's row.
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self>;
    /// From a row SeaORM read, its columns from `at` on, by index.
    fn from_result(row: &QueryResult, at: usize) -> Result<Self, DbErr>;
}

/// The rows of `statement` (built for SQLite), decoded with `decode`.
pub fn query<T>(
    conn: &ReadConn<'_>,
    statement: &Statement,
    mut decode: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    if let Some(observer) = &conn.observer {
        observer(&statement.sql);
    }
    let mut prepared = conn.conn.prepare_cached(&statement.sql)?;
    let values = statement
        .values
        .as_ref()
        .map(|v| v.0.as_slice())
        .unwrap_or(&[]);
    let params: Vec<SqlValue> = values.iter().map(sql_value).collect::<Result<_, _>>()?;
    let mut rows = prepared.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The models `select` finds: through the reader on a SQLite file, else
/// through SeaORM.
pub async fn all<C, E>(db: &C, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
where
    C: ConnectionTrait + 'static,
    E: EntityTrait,
    E::Model: FromRow,
{
    match reader(db) {
        Some(reader) => {
            let statement = select.build(DbBackend::Sqlite);
            reader
                .run(move |conn| query(conn, &statement, E::Model::from_row))
                .await
        }
        None => {
            let rows = db
                .query_all_raw(select.build(db.get_database_backend()))
                .await?;
            rows.iter()
                .map(|row| E::Model::from_result(row, 0))
                .collect()
        }
    }
}

/// A bound value as SQLite gets it from sqlx (timestamps as RFC 3339 text).
fn sql_value(value: &Value) -> rusqlite::Result<SqlValue> {
    use SqlValue::{Integer, Null, Real, Text};
    let int = |v: Option<i64>| v.map_or(Null, Integer);
    Ok(match value {
        Value::Bool(v) => int(v.map(i64::from)),
        Value::TinyInt(v) => int(v.map(i64::from)),
        Value::SmallInt(v) => int(v.map(i64::from)),
        Value::Int(v) => int(v.map(i64::from)),
        Value::BigInt(v) => int(*v),
        Value::TinyUnsigned(v) => int(v.map(i64::from)),
        Value::SmallUnsigned(v) => int(v.map(i64::from)),
        Value::Unsigned(v) => int(v.map(i64::from)),
        Value::BigUnsigned(v) => match v {
            Some(v) => Integer(
                i64::try_from(*v)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            ),
            None => Null,
        },
        Value::Float(v) => v.map_or(Null, |v| Real(f64::from(v))),
        Value::Double(v) => v.map_or(Null, Real),
        Value::String(v) => v.clone().map_or(Null, Text),
        Value::Char(v) => v.map_or(Null, |c| Text(c.to_string())),
        Value::Enum(v) => match v {
            sea_orm::sea_query::OptionEnum::Some(e) => Text(e.value.to_string()),
            sea_orm::sea_query::OptionEnum::None(_) => Null,
        },
        Value::Bytes(v) => v.clone().map_or(Null, SqlValue::Blob),
        Value::Json(v) => v.as_ref().map_or(Null, |j| Text(j.to_string())),
        Value::ChronoDateTimeUtc(v) => v.map_or(Null, |t| Text(rfc3339(&t))),
        Value::ChronoDateTimeWithTimeZone(v) => v.map_or(Null, |t| Text(rfc3339(&t))),
        other => {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("no SQLite form for {other:?}").into(),
            ));
        }
    })
}

fn rfc3339<Tz: TimeZone>(t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A timestamp as sqlx reads SQLite's text: RFC 3339, else SQLite's own
/// forms (UTC when they carry no offset).
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    const FORMATS: [&str; 4] = ["%F %T%.f", "%F %T%.f%:z", "%FT%T%.f", "%F %R"];
    FORMATS.iter().find_map(|format| {
        DateTime::<FixedOffset>::parse_from_str(text, format)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(text, format)
                    .ok()
                    .map(|t| t.and_utc())
            })
    })
}

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| {
        timestamp(&text).ok_or_else(|| conversion(index, format!("invalid datetime: {text}")))
    })
    .transpose()
}

fn required_time(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    time_at(row, index)?.ok_or_else(|| conversion(index, "a NULL timestamp".into()))
}

fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| conversion(index, e.to_string()))
}

impl FromRow for user::Model {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(user::Model {
            id: row.get(0)?,
            workspace_id: row.get(1)?,
            external_id: row.get(2)?,
            email: row.get(3)?,
            first_name: row.get(4)?,
            last_name: row.get(5)?,
            account_id: row.get(6)?,
            attributes: json_at(row, 7)?,
            last_seen_at: time_at(row, 8)?,
            created_at: required_time(row, 9)?,
            updated_at: required_time(row, 10)?,
        })
    }
    fn from_result(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        Ok(user::Model {
            id: row.try_get_by_index(at)?,
            workspace_id: row.try_get_by_index(at + 1)?,
            external_id: row.try_get_by_index(at + 2)?,
            email: row.try_get_by_index(at + 3)?,
            first_name: row.try_get_by_index(at + 4)?,
            last_name: row.try_get_by_index(at + 5)?,
            account_id: row.try_get_by_index(at + 6)?,
            attributes: row.try_get_by_index(at + 7)?,
            last_seen_at: row.try_get_by_index(at + 8)?,
            created_at: row.try_get_by_index(at + 9)?,
            updated_at: row.try_get_by_index(at + 10)?,
        })
    }
}

impl FromRow for account::Model {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(account::Model {
            id: row.get(0)?,
            workspace_id: row.get(1)?,
            external_id: row.get(2)?,
            name: row.get(3)?,
            attributes: json_at(row, 4)?,
            last_activity_at: time_at(row, 5)?,
            created_at: required_time(row, 6)?,
            updated_at: required_time(row, 7)?,
        })
    }
    fn from_result(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        Ok(account::Model {
            id: row.try_get_by_index(at)?,
            workspace_id: row.try_get_by_index(at + 1)?,
            external_id: row.try_get_by_index(at + 2)?,
            name: row.try_get_by_index(at + 3)?,
            attributes: row.try_get_by_index(at + 4)?,
            last_activity_at: row.try_get_by_index(at + 5)?,
            created_at: row.try_get_by_index(at + 6)?,
            updated_at: row.try_get_by_index(at + 7)?,
        })
    }
}

impl FromRow for tag::Model {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(tag::Model {
            id: row.get(0)?,
            workspace_id: row.get(1)?,
            name: row.get(2)?,
            key: row.get(3)?,
            value: row.get(4)?,
            parent_id: row.get(5)?,
            description: row.get(6)?,
            created_at: required_time(row, 7)?,
            deleted_at: time_at(row, 8)?,
        })
    }
    fn from_result(row: &QueryResult, at: usize) -> Result<Self, DbErr> {
        Ok(tag::Model {
            id: row.try_get_by_index(at)?,
            workspace_id: row.try_get_by_index(at + 1)?,
            name: row.try_get_by_index(at + 2)?,
            key: row.try_get_by_index(at + 3)?,
            value: row.try_get_by_index(at + 4)?,
            parent_id: row.try_get_by_index(at + 5)?,
            description: row.try_get_by_index(at + 6)?,
            created_at: row.try_get_by_index(at + 7)?,
            deleted_at: row.try_get_by_index(at + 8)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::Iterable;

    /// The decoders read columns by position: SeaORM must select them in
    /// the order the decoders expect (the models' field order).
    #[test]
    fn columns_are_selected_in_the_decoders_order() {
        fn names<E: EntityTrait>() -> Vec<String> {
            E::Column::iter()
                .map(|c| sea_orm::IdenStatic::as_str(&c).to_owned())
                .collect()
        }
        assert_eq!(
            names::<user::Entity>(),
            [
                "id",
                "workspace_id",
                "external_id",
                "email",
                "first_name",
                "last_name",
                "account_id",
                "attributes",
                "last_seen_at",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(
            names::<account::Entity>(),
            [
                "id",
                "workspace_id",
                "external_id",
                "name",
                "attributes",
                "last_activity_at",
                "created_at",
                "updated_at"
            ]
        );
        assert_eq!(
            names::<tag::Entity>(),
            [
                "id",
                "workspace_id",
                "name",
                "key",
                "value",
                "parent_id",
                "description",
                "created_at",
                "deleted_at"
            ]
        );
    }

    #[test]
    fn timestamps_read_as_sqlx_reads_them() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 2, 44, 13).unwrap()
            + chrono::Duration::microseconds(521_815);
        for text in [
            "2026-12-07T02:44:13.521815+00:00",
            "2026-12-07T03:44:13.521815+01:00",
            "2026-12-07 02:44:13.521815",
            "2026-12-07T02:44:13.521815",
        ] {
            assert_eq!(timestamp(text), Some(t), "{text}");
        }
        assert_eq!(timestamp(&rfc3339(&t)), Some(t));
        assert_eq!(timestamp("yesterday"), None);
    }
}

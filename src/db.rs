//! Database connection, migrations and write transactions.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::OwnedMutexGuard;

use crate::config::DatabaseSettings;

/// How long a SQLite writer waits for another one before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens the database: a SQLite file (created when missing, WAL mode, busy
/// timeout, foreign keys on) or a PostgreSQL server.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(settings.database_url.clone());
    options
        .max_connections(settings.db_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
                // Checkpoints are left to the task beside the writers
                // (`Checkpoints`); a writer still does one itself when the
                // WAL passes this many pages, should that task fall behind.
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
        });
    Database::connect(options).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// A transaction that writes. Use it wherever a `DatabaseTransaction` is
/// expected (it derefs to one and is a `ConnectionTrait`); `commit` ends it.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    sqlite: Option<SqliteTurn>,
}

/// A SQLite writer's turn, and who checkpoints the file after its commit.
struct SqliteTurn {
    turn: OwnedMutexGuard<()>,
    checkpoints: Arc<Checkpoints>,
    db: DatabaseConnection,
}

impl Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await?;
        if let Some(SqliteTurn {
            turn,
            checkpoints,
            db,
        }) = self.sqlite
        {
            drop(turn);
            checkpoints.after_commit(db);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }
    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// The writers' turn of one SQLite file in this process, and the gate that
/// ordinary writers pass one at a time before queueing for the turn.
#[derive(Default)]
struct Turns {
    gate: Arc<tokio::sync::Mutex<()>>,
    turn: Arc<tokio::sync::Mutex<()>>,
    checkpoints: Arc<Checkpoints>,
}

/// WAL pages past which a SQLite writer checkpoints in its own commit
/// (SQLite's default is 1,000): only when [`Checkpoints`] falls behind.
const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// At most one background checkpoint per file in this long.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// The checkpoints of one SQLite file in this process. A checkpoint copies
/// the pages the WAL holds back into the database file and syncs it. By
/// default the writer whose commit takes the WAL past 1,000 pages does it,
/// inside that commit, holding the write turn: on a 1,000,000-row import,
/// 5 of 36 s went to commits. Here the writer asks, and a task does a
/// PASSIVE checkpoint (which never blocks a writer) on another pooled
/// connection while the next writer works, at most once per
/// [`CHECKPOINT_EVERY`]: asks meanwhile wait for the next one.
#[derive(Default)]
struct Checkpoints {
    /// A task is checkpointing, or waiting to again.
    running: AtomicBool,
    /// A commit since the task's last checkpoint.
    wanted: AtomicBool,
}

impl Checkpoints {
    fn after_commit(self: Arc<Self>, db: DatabaseConnection) {
        self.wanted.store(true, Ordering::Release);
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            loop {
                {
                    // `running` is cleared however the task ends (a runtime
                    // shutting down drops it mid-checkpoint).
                    let _clear = ClearOnDrop(&self.running);
                    while self.wanted.swap(false, Ordering::AcqRel) {
                        let pool = db.get_sqlite_connection_pool();
                        if let Err(error) = sea_orm::sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                            .execute(pool)
                            .await
                        {
                            tracing::warn!(%error, "the SQLite checkpoint failed");
                        }
                        tokio::time::sleep(CHECKPOINT_EVERY).await;
                    }
                }
                // A commit between the last look at `wanted` and clearing
                // `running` left its ask for this task.
                if !self.wanted.load(Ordering::Acquire) || self.running.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The turns of each SQLite file in this process.
static SQLITE_TURNS: LazyLock<Mutex<HashMap<String, Turns>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Waits for this process's turn to write to a SQLite file. SQLite has one
/// writer at a time anyway; queueing here (first come, first served)
/// instead of in SQLite's busy handler, which sleeps in growing steps,
/// keeps writes flowing under concurrency. Other processes are still kept
/// out by `BEGIN IMMEDIATE` and the busy timeout.
///
/// Ordinary writers pass the gate one at a time, so at most one of them
/// waits for the turn itself; a `Queue::First` writer skips the gate and
/// waits behind that one only.
async fn sqlite_turn(db: &DatabaseConnection, queue: Queue) -> Option<SqliteTurn> {
    if db.get_database_backend() != DbBackend::Sqlite {
        return None;
    }
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_string_lossy()
        .into_owned();
    let (gate, turn, checkpoints) = {
        let mut turns = SQLITE_TURNS.lock().unwrap_or_else(|p| p.into_inner());
        let turns = turns.entry(file).or_default();
        (
            Arc::clone(&turns.gate),
            Arc::clone(&turns.turn),
            Arc::clone(&turns.checkpoints),
        )
    };
    let turn = if queue == Queue::First {
        turn.lock_owned().await
    } else {
        let _through_the_gate = gate.lock().await;
        turn.lock_owned().await
    };
    Some(SqliteTurn {
        turn,
        checkpoints,
        db: db.clone(),
    })
}

/// Starts a transaction that will write. On SQLite it waits for this
/// process's turn, then takes the write lock at once (`BEGIN IMMEDIATE`),
/// so two writers never deadlock on a lock upgrade.
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    begin_write_in(db, Queue::Normal).await
}

/// Like `begin_write`, but on SQLite its turn comes before the queue of
/// ordinary writers: it waits for at most the writer that holds the turn
/// and the one next in line. The automation worker writes this way, so a
/// burst of API writes does not delay scripts' follow-on changes.
pub async fn begin_write_first(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    begin_write_in(db, Queue::First).await
}

/// Which queue a SQLite writer waits in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    Normal,
    First,
}

async fn begin_write_in(db: &DatabaseConnection, queue: Queue) -> Result<WriteTxn, DbErr> {
    let sqlite = sqlite_turn(db, queue).await;
    let txn = db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    Ok(WriteTxn { txn, sqlite })
}

/// Whether a database error is a violated unique constraint.
pub fn is_unique_violation(error: &DbErr) -> bool {
    matches!(
        error.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether a database error ended the transaction only because of other
/// transactions running at the same time (PostgreSQL's deadlock detected,
/// 40P01, or serialization failure, 40001): trying the whole transaction
/// again is safe, and usually succeeds.
pub fn is_transient(error: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error
    else {
        return false;
    };
    match e.as_ref() {
        sea_orm::sqlx::Error::Database(e) => {
            matches!(e.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

/// Whether a transaction failed only for racing another writer: a unique
/// key it meant to insert was taken meanwhile, or it was ended as transient
/// (see [`is_transient`]). Trying it again reads the winner's rows.
pub fn lost_race(error: &DbErr) -> bool {
    is_unique_violation(error) || is_transient(error)
}

/// The highest id of a table so far (0 when empty): rows a set-based
/// insert makes next are the ones above it.
pub async fn max_id<E: sea_orm::EntityTrait>(
    db: &impl ConnectionTrait,
    table: E,
    id: E::Column,
) -> Result<i64, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
    let query = Query::select()
        .expr(Func::coalesce([Expr::col(id).max(), Expr::val(0i64)]))
        .from(table)
        .to_owned();
    Ok(match db.query_one(&query).await? {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    })
}

/// A table whose rows belong to one workspace each, keyed by `id`.
pub trait InWorkspace: sea_orm::EntityTrait {
    /// The `workspace_id` column.
    const WORKSPACE: Self::Column;
    /// The `id` column.
    const ID: Self::Column;
}

/// The workspace-scoped tables [`find_in_workspace`] and
/// [`find_many_in_workspace`] read.
macro_rules! in_workspace {
    ($($table:ident),+ $(,)?) => {$(
        impl InWorkspace for entity::$table::Entity {
            const WORKSPACE: entity::$table::Column = entity::$table::Column::WorkspaceId;
            const ID: entity::$table::Column = entity::$table::Column::Id;
        }
    )+};
}

in_workspace!(
    account,
    user,
    tag,
    tag_change,
    segment,
    script,
    script_run,
    webhook,
    webhook_delivery,
);

/// The row with this id, if it is in the workspace (a row of another
/// workspace is not found).
pub async fn find_in_workspace<E: InWorkspace>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<Option<E::Model>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    E::find()
        .filter(E::WORKSPACE.eq(workspace_id))
        .filter(E::ID.eq(id))
        .one(db)
        .await
}

/// The rows of the workspace among `ids` (rows of other workspaces are not
/// found); no statement when there are no ids.
pub async fn find_many_in_workspace<E: InWorkspace>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<E::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    select_in_workspace::<E>(workspace_id, ids).all(db).await
}

/// [`find_in_workspace`] for the models the SQLite reader decodes (see
/// `sqlite_read`): on a SQLite file, one hop to the reader.
pub async fn read_in_workspace<C, E>(
    db: &C,
    workspace_id: i64,
    id: i64,
) -> Result<Option<E::Model>, DbErr>
where
    C: ConnectionTrait + 'static,
    E: InWorkspace,
    E::Model: crate::sqlite_read::FromRow,
{
    let select = select_in_workspace::<E>(workspace_id, &[id]);
    Ok(crate::sqlite_read::all(db, select).await?.pop())
}

/// [`find_many_in_workspace`] for the models the SQLite reader decodes.
pub async fn read_many_in_workspace<C, E>(
    db: &C,
    workspace_id: i64,
    ids: &[i64],
) -> Result<Vec<E::Model>, DbErr>
where
    C: ConnectionTrait + 'static,
    E: InWorkspace,
    E::Model: crate::sqlite_read::FromRow,
{
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    crate::sqlite_read::all(db, select_in_workspace::<E>(workspace_id, ids)).await
}

/// The rows of the workspace among `ids`.
pub fn select_in_workspace<E: InWorkspace>(workspace_id: i64, ids: &[i64]) -> sea_orm::Select<E> {
    use sea_orm::{ColumnTrait, QueryFilter};
    E::find()
        .filter(E::WORKSPACE.eq(workspace_id))
        .filter(E::ID.is_in(ids.iter().copied()))
}

/// On PostgreSQL, locks one row (`FOR UPDATE`) until the transaction ends,
/// so that writers about that row take turns. SQLite's `BEGIN IMMEDIATE`
/// serializes every writer already: nothing to do there.
pub async fn lock_row<E: sea_orm::EntityTrait>(
    db: &impl ConnectionTrait,
    table: E,
    id: E::Column,
    value: i64,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait, LockType, Query};
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let lock = Query::select()
        .column(id)
        .from(table)
        .and_where(Expr::col(id).eq(value))
        .lock(LockType::Update)
        .to_owned();
    db.query_one(&lock).await?;
    Ok(())
}

/// Many rows as one statement parameter: a JSON array of arrays, read as a
/// table of its elements (`json_each` on SQLite, `jsonb_array_elements` on
/// PostgreSQL). A statement then binds one value however many rows it
/// carries, and keeps one text (and one cached plan) for every size.
#[derive(Debug, Clone, Copy)]
pub struct JsonRows {
    postgres: bool,
}

impl JsonRows {
    pub fn new(db: &impl ConnectionTrait) -> Self {
        JsonRows {
            postgres: db.get_database_backend() == DbBackend::Postgres,
        }
    }

    /// The table function over `rows`, for `from_function(.., alias)`.
    pub fn table(&self, rows: Vec<serde_json::Value>) -> sea_orm::sea_query::FunctionCall {
        let function = if self.postgres {
            "jsonb_array_elements"
        } else {
            "json_each"
        };
        sea_orm::sea_query::Func::cust(function).arg(sea_orm::sea_query::Expr::val(
            serde_json::Value::Array(rows),
        ))
    }

    /// Item `i` of the row `alias` names, as text (SQL NULL for a JSON null).
    pub fn text(&self, alias: &str, i: usize) -> sea_orm::sea_query::Expr {
        sea_orm::sea_query::Expr::cust(format!("\"{alias}\".\"value\" ->> {i}"))
    }

    /// Item `i` of the row `alias` names, as a 64-bit integer.
    pub fn bigint(&self, alias: &str, i: usize) -> sea_orm::sea_query::Expr {
        if self.postgres {
            sea_orm::sea_query::Expr::cust(format!("CAST(\"{alias}\".\"value\" ->> {i} AS bigint)"))
        } else {
            // SQLite's `->>` gives a JSON number as an INTEGER already.
            self.text(alias, i)
        }
    }
}

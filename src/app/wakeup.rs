//! Wake-ups across processes: the automation worker and the webhook
//! dispatcher of this process hear within milliseconds of rows that another
//! process (a standalone `tagsmith worker`, a second server, a CLI import)
//! committed to their queues. Writers of this process wake them directly
//! (`AppState::committed`, the worker's listener); the poll of each loop
//! (`--automation-poll-ms`) stays as the safety net.
//!
//! On PostgreSQL the writers announce themselves with `pg_notify` inside
//! their transaction (`outbox::announce`; a tag write's announcement on the
//! change feed's channel stands for its automation events) and one
//! connection per process `LISTEN`s on both channels. On SQLite a thread
//! looks every 15 ms whether the database's files changed and, when they
//! did, the highest id of both queues is read (one statement on their
//! primary keys) and a loop woken when its queue's grew.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::Notify;

use crate::outbox::{self, Queue};
use crate::tags::feed;

/// How often SQLite is polled for rows of other processes.
pub const SQLITE_POLL: Duration = Duration::from_millis(15);
/// The wait before listening again after the listener failed.
const RETRY: Duration = Duration::from_millis(500);

/// What to wake when a queue has new rows.
#[derive(Clone)]
pub struct Wakers {
    pub automation: Arc<Notify>,
    pub webhooks: Arc<Notify>,
}

impl Wakers {
    fn wake(&self, queue: Queue) {
        match queue {
            Queue::Automation => self.automation.notify_one(),
            Queue::Webhooks => self.webhooks.notify_one(),
        }
    }

    fn wake_both(&self) {
        self.wake(Queue::Automation);
        self.wake(Queue::Webhooks);
    }
}

/// Follows the database's queues until `shutdown` resolves.
pub async fn run(db: DatabaseConnection, wakers: Wakers, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let watch = async {
            match db.get_database_backend() {
                DbBackend::Postgres => listen(&db, &wakers).await,
                _ => poll(&db, &wakers).await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            result = watch => if let Err(e) = result {
                tracing::warn!(error = %e, "wake-ups from other processes stopped; retrying (the poll still runs)");
            },
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(RETRY) => {}
        }
        // Rows may have come while nobody listened.
        wakers.wake_both();
    }
}

/// PostgreSQL: waits for the announcements of every process.
async fn listen(db: &DatabaseConnection, wakers: &Wakers) -> Result<(), DbErr> {
    let pool = db.get_postgres_connection_pool();
    let cannot = |e: sea_orm::sqlx::Error| DbErr::Custom(format!("cannot listen: {e}"));
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
        .await
        .map_err(cannot)?;
    listener
        .listen_all([outbox::CHANNEL, feed::CHANNEL])
        .await
        .map_err(cannot)?;
    loop {
        match listener.try_recv().await.map_err(cannot)? {
            Some(notification) if notification.channel() == feed::CHANNEL => {
                wakers.wake(Queue::Automation)
            }
            Some(notification) => match Queue::parse(notification.payload()) {
                Some(queue) => wakers.wake(queue),
                None => wakers.wake_both(),
            },
            // The connection was lost (the next call connects again):
            // announcements may have been missed meanwhile.
            None => wakers.wake_both(),
        }
    }
}

/// SQLite: wakes a loop when its queue's highest id grew. Every commit
/// writes the database's files (its write-ahead log, in WAL mode), so a
/// thread of its own looks at their size and modification time every
/// [`SQLITE_POLL`] (a `stat` and a sleep: the runtime is not woken while
/// nothing changes, so an idle server pays nearly nothing) and the queues
/// are read only when the files changed. (A commit the files do not show,
/// two in the same clock tick of the file system leaving the log's size
/// alike, waits for the loops' own poll.)
async fn poll(db: &DatabaseConnection, wakers: &Wakers) -> Result<(), DbErr> {
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_owned();
    let mut wal = file.clone().into_os_string();
    wal.push("-wal");
    let changed = Arc::new(Notify::new());
    watch_files([file, wal.into()], Arc::downgrade(&changed))
        .map_err(|e| DbErr::Custom(format!("cannot watch the database's files: {e}")))?;
    let statement = Statement::from_string(
        DbBackend::Sqlite,
        "SELECT (SELECT MAX(id) FROM automation_events), (SELECT MAX(id) FROM webhook_deliveries)",
    );
    let mut last: Option<(Option<i64>, Option<i64>)> = None;
    loop {
        // All rows, not one: a statement stepped to its end is reset, so the
        // pooled connection keeps no read snapshot open (SQLite).
        if let Some(row) = db.query_all_raw(statement.clone()).await?.first() {
            let now: (Option<i64>, Option<i64>) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            if let Some((events, deliveries)) = last {
                if now.0 != events {
                    wakers.wake(Queue::Automation);
                }
                if now.1 != deliveries {
                    wakers.wake(Queue::Webhooks);
                }
            }
            last = Some(now);
        }
        changed.notified().await;
    }
}

/// Notifies `changed` whenever one of `files` changed size or modification
/// time, from a thread that ends once `changed` is gone.
fn watch_files(
    files: [std::path::PathBuf; 2],
    changed: std::sync::Weak<Notify>,
) -> std::io::Result<()> {
    let look = move || {
        files.each_ref().map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        })
    };
    std::thread::Builder::new()
        .name("tagsmith-sqlite-watch".into())
        .spawn(move || {
            let mut seen = look();
            loop {
                std::thread::sleep(SQLITE_POLL);
                let Some(changed) = changed.upgrade() else {
                    return;
                };
                let now = look();
                if now != seen {
                    seen = now;
                    changed.notify_one();
                }
            }
        })
        .map(|_| ())
}

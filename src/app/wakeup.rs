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
//! waits for the database's files to be written (inotify on Linux; a look
//! every 15 ms elsewhere) and, when they were, the highest id of both
//! queues is read (one statement on their primary keys) and a loop woken
//! when its queue's grew.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::Notify;

use crate::outbox::{self, Queue};
use crate::tags::feed;

/// How often SQLite's files are looked at where the kernel cannot tell,
/// and the least time between two reads of the queues after writes.
pub const SQLITE_POLL: Duration = Duration::from_millis(15);
/// How long after a write to SQLite's files their queues are read (a
/// commit's writes come in a burst; Linux).
#[cfg(target_os = "linux")]
const BURST: Duration = Duration::from_millis(3);
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
/// thread of its own waits for them to be written ([`watch_files`]: the
/// runtime is not woken while nothing changes) and the queues are read
/// only when they were. (Where the thread has to look at the files' size
/// and modification time, a commit they do not show, two in the same clock
/// tick of the file system leaving the log's size alike, waits for the
/// loops' own poll.)
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

/// Notifies `changed` whenever one of `files` changed, from a thread that
/// ends once `changed` is gone. On Linux the kernel tells (inotify on their
/// directory: the thread sleeps until a file of it is written, so an idle
/// server is never woken); elsewhere, or when inotify cannot be had, the
/// thread looks at the files every [`SQLITE_POLL`].
fn watch_files(files: [PathBuf; 2], changed: Weak<Notify>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("tagsmith-sqlite-watch".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            let files = match inotify_watch(&files, &changed) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the database's files with inotify; looking every {} ms", SQLITE_POLL.as_millis());
                    files
                }
            };
            stat_watch(files, changed)
        })
        .map(|_| ())
}

/// Follows `files` by inotify until `changed` is gone. A commit writes the
/// log in a burst: the queues are read [`BURST`] after its first write,
/// and then not again before [`SQLITE_POLL`] has passed (a busy database,
/// written all the time by this process's own writers, is read as often
/// as the files would be looked at, and the thread wakes about three times
/// per period; writes meanwhile are kept by the kernel and start the next
/// period at once).
#[cfg(target_os = "linux")]
fn inotify_watch(files: &[PathBuf; 2], changed: &Weak<Notify>) -> std::io::Result<()> {
    use inotify::{Inotify, WatchMask};
    let mut inotify = Inotify::init()?;
    // The directory rather than the files: the log comes and goes with the
    // connections (SQLite deletes it when the last one closes).
    let directory = match files[0].parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    inotify.watches().add(
        directory,
        WatchMask::MODIFY | WatchMask::CREATE | WatchMask::DELETE | WatchMask::MOVED_TO,
    )?;
    let names = files
        .each_ref()
        .map(|f| f.file_name().map(ToOwned::to_owned));
    let ours = |events: inotify::Events<'_>| {
        events.into_iter().any(|event| {
            event
                .name
                .is_some_and(|n| names.iter().flatten().any(|f| f == n))
        })
    };
    let mut buffer = [0u8; 4096];
    loop {
        let written = ours(inotify.read_events_blocking(&mut buffer)?);
        let Some(changed) = changed.upgrade() else {
            return Ok(());
        };
        if written {
            std::thread::sleep(BURST);
            // Drop the burst's other events: the queues, read next, show
            // what it committed, and the next blocking read waits for
            // writes after it.
            loop {
                match inotify.read_events(&mut buffer) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            changed.notify_one();
            drop(changed);
            std::thread::sleep(SQLITE_POLL.saturating_sub(BURST));
        }
    }
}

/// Looks at the size and modification time of `files` every
/// [`SQLITE_POLL`] until `changed` is gone.
fn stat_watch(files: [PathBuf; 2], changed: Weak<Notify>) {
    let look = || {
        files.each_ref().map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        })
    };
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
}

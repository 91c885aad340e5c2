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
//! connection per process `LISTEN`s on both channels. On SQLite a short
//! poll (every 15 ms) looks whether the database's files changed and, when
//! they did, reads the highest id of both queues (one statement on their
//! primary keys) and wakes a loop when its queue's grew.

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
/// writes the database's files (its write-ahead log, in WAL mode), so the
/// poll looks at their size and modification time first, a system call
/// (microseconds, nothing measurable when idle), and reads the queues only
/// when they changed. (A commit the files do not show, two in the same
/// clock tick of the file system leaving the log's size alike, waits for
/// the loops' own poll.)
async fn poll(db: &DatabaseConnection, wakers: &Wakers) -> Result<(), DbErr> {
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_owned();
    let mut wal = file.clone().into_os_string();
    wal.push("-wal");
    let files = [file, wal.into()];
    let statement = Statement::from_string(
        DbBackend::Sqlite,
        "SELECT (SELECT MAX(id) FROM automation_events), (SELECT MAX(id) FROM webhook_deliveries)",
    );
    let mut seen = None;
    let mut last: Option<(Option<i64>, Option<i64>)> = None;
    let mut tick = tokio::time::interval(SQLITE_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let written = files.each_ref().map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.len(), m.modified().ok()))
        });
        if seen.as_ref() == Some(&written) && last.is_some() {
            continue;
        }
        seen = Some(written);
        let Some(row) = db.query_one_raw(statement.clone()).await? else {
            continue;
        };
        let now: (Option<i64>, Option<i64>) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
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
}

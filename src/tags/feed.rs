//! The feed of committed tag changes, for subscriptions.
//!
//! On SQLite, where writers take turns and ids grow in commit order, a
//! task polls `tag_changes` past the last id it delivered: at once when
//! this server commits a change (then at most every 5 ms), and every 50 ms
//! for the changes of other processes (the CLI's imports, a standalone
//! worker). On PostgreSQL,
//! where ids are not committed in order, every write announces itself with
//! `pg_notify` inside its transaction (delivered at commit, to every
//! server listening on the database), naming its tag and the id floor of
//! its rows; the listener then reads exactly those rows. Either way every
//! server's subscribers see every committed change, whoever made it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use entity::tag_change;
use sea_orm::sea_query::{Expr, Func, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use tokio::sync::{Notify, broadcast};

use crate::db::max_id;

/// The PostgreSQL channel writes announce themselves on.
pub const CHANNEL: &str = "tagsmith_changes";
/// How often SQLite is polled while someone listens.
const POLL: Duration = Duration::from_millis(50);
/// The least time between two polls of SQLite, however often it is nudged.
const POLL_GAP: Duration = Duration::from_millis(5);
/// Changes buffered per subscriber; a slower one skips the oldest.
const BUFFER: usize = 4096;

/// Announces a write's rows (PostgreSQL only), inside its transaction.
pub async fn announce(txn: &impl ConnectionTrait, tag_id: i64, floor: i64) -> Result<(), DbErr> {
    announce_many(txn, &[tag_id], floor).await
}

/// Announces the rows of a write of several tags (PostgreSQL only): one
/// notification per tag, a few hundred per statement.
pub async fn announce_many(
    txn: &impl ConnectionTrait,
    tag_ids: &[i64],
    floor: i64,
) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for chunk in tag_ids.chunks(500) {
        let mut notify = Query::select();
        for tag_id in chunk {
            notify.expr(
                Func::cust("pg_notify")
                    .arg(Expr::val(CHANNEL))
                    .arg(Expr::val(format!("{tag_id}:{floor}"))),
            );
        }
        txn.query_one(&notify).await?;
    }
    Ok(())
}

/// Committed tag changes, as they happen.
#[derive(Clone)]
pub struct ChangeFeed {
    sender: broadcast::Sender<Arc<tag_change::Model>>,
    /// Nudged when this server commits tag changes (SQLite's poll).
    nudge: Arc<Notify>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            sender: broadcast::channel(BUFFER).0,
            nudge: Arc::default(),
        }
    }
}

/// Which committed changes a subscriber wants: those of its workspace,
/// maybe only of one kind of subject or of one tag (by exact name).
#[derive(Debug, Clone)]
pub struct FeedFilter {
    pub workspace_id: i64,
    pub subject_kind: Option<crate::vocab::SubjectKind>,
    pub tag: Option<String>,
}

impl FeedFilter {
    /// Whether the change is one the subscriber wants (a tag that cannot
    /// be read is not).
    pub async fn admits(&self, db: &DatabaseConnection, change: &tag_change::Model) -> bool {
        if change.workspace_id != self.workspace_id {
            return false;
        }
        if let Some(kind) = self.subject_kind
            && change.subject_kind != kind
        {
            return false;
        }
        match &self.tag {
            Some(name) => super::store::find_many(db, self.workspace_id, &[change.tag_id])
                .await
                .unwrap_or_default()
                .iter()
                .any(|t| &t.name == name),
            None => true,
        }
    }
}

impl ChangeFeed {
    /// The changes committed from now on that `filter` admits. A
    /// subscriber that falls more than the buffer behind skips the oldest.
    pub fn changes(
        &self,
        db: DatabaseConnection,
        filter: FeedFilter,
    ) -> impl futures_util::Stream<Item = Arc<tag_change::Model>> + Send + use<> {
        futures_util::stream::unfold(
            (self.subscribe(), db, filter),
            |(mut receiver, db, filter)| async move {
                loop {
                    let change = match receiver.recv().await {
                        Ok(change) => change,
                        Err(broadcast::error::RecvError::Lagged(skipped)) => {
                            tracing::warn!(skipped, "a subscriber fell behind");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    };
                    if filter.admits(&db, &change).await {
                        return Some((change, (receiver, db, filter)));
                    }
                }
            },
        )
    }

    /// Every change committed from now on (of every workspace: filter!).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<tag_change::Model>> {
        self.sender.subscribe()
    }

    /// This server committed tag changes: on SQLite, poll for them now.
    pub fn committed(&self) {
        self.nudge.notify_one();
    }

    /// Starts following the database in the background.
    pub fn spawn(&self, db: DatabaseConnection) -> tokio::task::JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move {
            let result = match db.get_database_backend() {
                DbBackend::Postgres => feed.listen(&db).await,
                _ => feed.poll(&db).await,
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "the change feed stopped");
            }
        })
    }

    fn send(&self, change: tag_change::Model) {
        let _ = self.sender.send(Arc::new(change)); // no subscriber: nobody to tell
    }

    async fn poll(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let mut watermark: Option<i64> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.nudge.notified() => {}
            }
            if self.sender.receiver_count() == 0 {
                watermark = None;
                continue;
            }
            let last = match watermark {
                Some(last) => last,
                None => {
                    let last = match max_id(db, tag_change::Entity, tag_change::Column::Id).await {
                        Ok(last) => last,
                        Err(e) => {
                            tracing::warn!(error = %e, "change feed: cannot read the last change");
                            continue;
                        }
                    };
                    watermark = Some(last);
                    continue;
                }
            };
            let rows = tag_change::Entity::find()
                .filter(tag_change::Column::Id.gt(last))
                .order_by_asc(tag_change::Column::Id)
                .limit(1000)
                .all(db)
                .await;
            match rows {
                Ok(rows) => {
                    for row in rows {
                        watermark = Some(row.id);
                        self.send(row);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "change feed: cannot read changes"),
            }
            tokio::time::sleep(POLL_GAP).await;
        }
    }

    async fn listen(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let pool = db.get_postgres_connection_pool();
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(|e| DbErr::Custom(format!("cannot listen: {e}")))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(|e| DbErr::Custom(format!("cannot listen: {e}")))?;
        let mut delivered: HashMap<i64, i64> = HashMap::new();
        loop {
            let notification = match listener.recv().await {
                Ok(notification) => notification,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: listener error; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if self.sender.receiver_count() == 0 {
                continue;
            }
            let Some((tag_id, floor)) = notification
                .payload()
                .split_once(':')
                .and_then(|(t, f)| Some((t.parse::<i64>().ok()?, f.parse::<i64>().ok()?)))
            else {
                continue;
            };
            // Writers of one tag take turns, so ids of a tag grow in commit order.
            let from = Ord::max(floor, delivered.get(&tag_id).copied().unwrap_or(0));
            let rows = tag_change::Entity::find()
                .filter(tag_change::Column::TagId.eq(tag_id))
                .filter(tag_change::Column::Id.gt(from))
                .order_by_asc(tag_change::Column::Id)
                .all(db)
                .await;
            match rows {
                Ok(rows) => {
                    for row in rows {
                        delivered.insert(tag_id, row.id);
                        self.send(row);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "change feed: cannot read changes"),
            }
        }
    }
}

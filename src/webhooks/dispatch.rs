//! The dispatcher: sends due deliveries and records what became of them.
//!
//! A loop over [`Dispatcher::step`]: find the enabled webhooks with due
//! deliveries, and for each one with a free place under its concurrency
//! cap, claim its next due deliveries (a subject's delivery only once its
//! earlier ones to that webhook are done, so they arrive in order) and send
//! each on a task of its own. A claim moves the delivery's `next_attempt_at`
//! past the attempt's timeout, so another dispatcher (another process) does
//! not take it meanwhile, and one that dies leaves it due again. A slow or
//! dead endpoint fills only its own webhook's places.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{webhook, webhook_delivery};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::Notify;
use tracing::Instrument;

use super::schedule::{self, Answer, Verdict};
use super::target::{self, AllowList, GuardedResolver};
use super::{signature, store};
use crate::metrics::Metrics;
use crate::vocab::DeliveryStatus;

/// How deliveries are sent and retried.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Hosts allowed although private (and over http://).
    pub allow: Arc<AllowList>,
    /// The waits before the 2nd, 3rd, ... attempts.
    pub schedule: Vec<Duration>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Attempts in flight at once to one webhook.
    pub concurrency: usize,
    /// How often to look for due deliveries when nothing wakes the dispatcher.
    pub poll_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow: Arc::default(),
            schedule: [5, 300, 1800, 7200, 18000, 36000, 36000]
                .map(Duration::from_secs)
                .to_vec(),
            timeout: Duration::from_secs(15),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// From the command line's settings; an unreadable retry schedule is an error.
    pub fn from_config(config: &crate::config::WebhookSettings) -> Result<Self, String> {
        let schedule = schedule::parse_schedule(&config.webhook_retry_schedule)
            .map_err(|e| format!("--webhook-retry-schedule: {e}"))?;
        Ok(Settings {
            allow: Arc::new(AllowList::new(&config.webhook_allow_hosts)),
            schedule,
            timeout: Duration::from_millis(Ord::max(config.webhook_timeout_ms, 10)),
            concurrency: Ord::max(config.webhook_concurrency, 1),
            ..Default::default()
        })
    }
}

/// Bytes of a receiver's answer read (for the error a failed attempt records).
const MAX_ANSWER_BYTES: usize = 1024;

/// The sender of webhook deliveries.
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    client: reqwest::Client,
    /// Attempts in flight, by webhook.
    in_flight: Arc<Mutex<HashMap<i64, usize>>>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        settings: Arc<Settings>,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("tagsmith-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver(Arc::clone(&settings.allow))))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Dispatcher {
            db,
            settings,
            wake,
            client,
            in_flight: Arc::default(),
            metrics,
        })
    }

    /// Sends due deliveries until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let pause = match self.step().await {
                Ok(pause) => {
                    failures = 0;
                    pause
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "webhook dispatcher step failed");
                    Duration::from_millis(100 * 2u64.pow(Ord::min(failures, 6)))
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn free_places(&self, webhook_id: i64) -> usize {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.settings
            .concurrency
            .max(1)
            .saturating_sub(in_flight.get(&webhook_id).copied().unwrap_or(0))
    }

    fn took(&self, webhook_id: i64, delta: isize) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(webhook_id).or_default();
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            in_flight.remove(&webhook_id);
        }
    }

    /// Starts the attempts that are due and have a place; returns how long
    /// to wait before looking again (unless woken).
    pub async fn step(&self) -> Result<Duration, DbErr> {
        use webhook_delivery::Column;
        let now = crate::time::now();
        let due_webhooks: Vec<i64> = webhook_delivery::Entity::find()
            .select_only()
            .column(Column::WebhookId)
            .distinct()
            .filter(Column::Status.eq(DeliveryStatus::Pending))
            .filter(Column::NextAttemptAt.lte(now))
            .limit(1000)
            .into_tuple()
            .all(&self.db)
            .await?;
        if !due_webhooks.is_empty() {
            let webhooks = webhook::Entity::find()
                .filter(webhook::Column::Id.is_in(due_webhooks))
                .filter(webhook::Column::Enabled.eq(true))
                .all(&self.db)
                .await?;
            for hook in webhooks {
                let free = self.free_places(hook.id);
                if free == 0 {
                    continue;
                }
                let hook = Arc::new(hook);
                for delivery in self.claim(&hook, free, now).await? {
                    self.took(hook.id, 1);
                    let dispatcher = self.clone();
                    let hook = Arc::clone(&hook);
                    let span = tracing::info_span!(
                        "webhook_attempt",
                        webhook = hook.id,
                        delivery = delivery.id,
                        attempt = delivery.attempts + 1
                    );
                    tokio::spawn(async move {
                        let webhook_id = hook.id;
                        let attempt = dispatcher.attempt(&hook, delivery).instrument(span);
                        if let Err(e) = attempt.await {
                            tracing::error!(error = %e, "webhook: recording an attempt failed");
                        }
                        dispatcher.took(webhook_id, -1);
                        dispatcher.wake.notify_one();
                    });
                }
            }
        }
        // Until the next delivery falls due, within the poll interval.
        let next: Option<Option<DateTime<Utc>>> = webhook_delivery::Entity::find()
            .select_only()
            .column_as(Column::NextAttemptAt.min(), "next")
            .filter(Column::Status.eq(DeliveryStatus::Pending))
            .filter(Column::NextAttemptAt.gt(now))
            .into_tuple()
            .one(&self.db)
            .await?;
        let until_next = next
            .flatten()
            .and_then(|at| (at - crate::time::now()).to_std().ok())
            .unwrap_or(self.settings.poll_interval);
        Ok(until_next.min(self.settings.poll_interval))
    }

    /// Claims up to `max` due deliveries of a webhook, each the earliest
    /// pending one of its subject to this webhook.
    async fn claim(
        &self,
        hook: &webhook::Model,
        max: usize,
        now: DateTime<Utc>,
    ) -> Result<Vec<webhook_delivery::Model>, DbErr> {
        use webhook_delivery::{Column, Entity};
        let earlier = Alias::new("earlier");
        let earlier_pending = Query::select()
            .expr(Expr::val(1))
            .from_as(Entity, earlier.clone())
            .and_where(
                Expr::col((earlier.clone(), Column::WebhookId)).equals((Entity, Column::WebhookId)),
            )
            .and_where(Expr::col((earlier.clone(), Column::Status)).eq(DeliveryStatus::Pending))
            .and_where(
                Expr::col((earlier.clone(), Column::SubjectKind))
                    .equals((Entity, Column::SubjectKind)),
            )
            .and_where(
                Expr::col((earlier.clone(), Column::SubjectId)).equals((Entity, Column::SubjectId)),
            )
            .and_where(Expr::col((earlier.clone(), Column::Id)).lt(Expr::col((Entity, Column::Id))))
            .to_owned();
        let candidates = Entity::find()
            .filter(Column::WebhookId.eq(hook.id))
            .filter(Column::Status.eq(DeliveryStatus::Pending))
            .filter(Column::NextAttemptAt.lte(now))
            .filter(Expr::exists(earlier_pending).not())
            .order_by_asc(Column::Id)
            .limit(max as u64)
            .all(&self.db)
            .await?;
        let lease_end = now
            + chrono::Duration::from_std(self.settings.timeout + Duration::from_secs(30))
                .unwrap_or_default();
        if candidates.is_empty() {
            return Ok(candidates);
        }
        // In the process's write turn (on SQLite, a writer outside it would
        // wait in SQLite's busy handler, in steps of up to 100 ms).
        let txn = crate::db::begin_write(&self.db).await?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for delivery in candidates {
            let taken = Entity::update_many()
                .col_expr(Column::NextAttemptAt, Expr::value(Some(lease_end)))
                .filter(Column::Id.eq(delivery.id))
                .filter(Column::Status.eq(DeliveryStatus::Pending))
                .filter(Column::NextAttemptAt.eq(delivery.next_attempt_at))
                .exec(&*txn)
                .await?
                .rows_affected;
            if taken == 1 {
                claimed.push(delivery);
            }
        }
        txn.commit().await?;
        Ok(claimed)
    }

    /// One attempt at a delivery, and its outcome recorded.
    async fn attempt(
        &self,
        hook: &webhook::Model,
        delivery: webhook_delivery::Model,
    ) -> Result<(), DbErr> {
        let (answer, error) = self.send(hook, &delivery).await;
        let attempts = delivery.attempts + 1;
        let verdict = schedule::verdict(&answer, attempts, &self.settings.schedule, random());
        let code = match &answer {
            Answer::Status { code, .. } => Some(i32::from(*code)),
            Answer::NoAnswer => None,
        };
        let now = crate::time::now();
        use webhook_delivery::Column;
        let mut update = webhook_delivery::Entity::update_many()
            .col_expr(Column::Attempts, Expr::value(attempts))
            .col_expr(Column::LastStatusCode, Expr::value(code))
            .col_expr(Column::LastError, Expr::value(error.clone()));
        let outcome = match verdict {
            Verdict::Succeeded => {
                update = update
                    .col_expr(Column::Status, Expr::value(DeliveryStatus::Succeeded))
                    .col_expr(Column::NextAttemptAt, Expr::value(None::<DateTime<Utc>>))
                    .col_expr(Column::DeliveredAt, Expr::value(Some(now)));
                "succeeded"
            }
            Verdict::Retry(wait) => {
                // Microseconds, as every stored time (see `crate::time`).
                let at =
                    (now + chrono::Duration::from_std(wait).unwrap_or_default()).trunc_subsecs(6);
                update = update.col_expr(Column::NextAttemptAt, Expr::value(Some(at)));
                "retried"
            }
            Verdict::Failed | Verdict::Disable => {
                update = update
                    .col_expr(Column::Status, Expr::value(DeliveryStatus::Failed))
                    .col_expr(Column::NextAttemptAt, Expr::value(None::<DateTime<Utc>>));
                "failed"
            }
        };
        let txn = crate::db::begin_write(&self.db).await?;
        update
            .filter(Column::Id.eq(delivery.id))
            .exec(&*txn)
            .await?;
        if verdict == Verdict::Disable {
            webhook::Entity::update_many()
                .col_expr(webhook::Column::Enabled, Expr::value(false))
                .col_expr(webhook::Column::UpdatedAt, Expr::value(now))
                .filter(webhook::Column::Id.eq(hook.id))
                .exec(&*txn)
                .await?;
            tracing::warn!(webhook = hook.id, "webhook answered 410 Gone: disabled");
        }
        txn.commit().await?;
        self.metrics.webhook_attempt(outcome);
        tracing::debug!(
            webhook = hook.id,
            delivery = delivery.id,
            attempts,
            ?code,
            outcome,
            "webhook attempt"
        );
        Ok(())
    }

    /// Sends a delivery once: its answer, and the error to record (`None`
    /// on success).
    async fn send(
        &self,
        hook: &webhook::Model,
        delivery: &webhook_delivery::Model,
    ) -> (Answer, Option<String>) {
        // The URL again (a literal address is never resolved, so the
        // resolver cannot check it), then the resolver checks names.
        let url = match target::check_url(&hook.url, &self.settings.allow) {
            Ok(url) => url,
            Err(e) => return (Answer::NoAnswer, Some(e)),
        };
        let body = match serde_json::to_vec(&delivery.payload) {
            Ok(body) => body,
            Err(e) => {
                return (
                    Answer::NoAnswer,
                    Some(format!("cannot encode the body: {e}")),
                );
            }
        };
        let now = crate::time::now();
        let timestamp = now.timestamp();
        let signatures = signature::header(
            &store::signing_secrets(hook, now),
            &delivery.message_id,
            timestamp,
            &body,
        );
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return (Answer::NoAnswer, Some(error_chain(&e))),
        };
        let code = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| schedule::retry_after(v, now));
        if (200..300).contains(&code) {
            return (Answer::Status { code, retry_after }, None);
        }
        // A little of the answer, for the delivery log; no more is read.
        let mut text = Vec::new();
        while text.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                _ => break,
            }
        }
        text.truncate(MAX_ANSWER_BYTES);
        let text = String::from_utf8_lossy(&text);
        let error = match text.trim() {
            "" => format!("HTTP {code}"),
            text => format!("HTTP {code}: {text}"),
        };
        (Answer::Status { code, retry_after }, Some(error))
    }
}

/// An error with its causes (reqwest's own message says little: "error
/// sending request").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Uniform in [0, 1), for jitter.
fn random() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

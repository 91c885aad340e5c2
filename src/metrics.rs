//! Counters for operators, rendered in the Prometheus text format at `GET /metrics`.
//!
//! Pure: counters in memory and their rendering. The HTTP layer counts
//! requests and error codes, the automation worker counts script runs, and
//! `/metrics` adds the outbox backlog it reads from the database when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::error::Code;

/// Every code of the API, so each error series exists (at 0) from the start.
const CODES: [Code; 8] = [
    Code::Unauthenticated,
    Code::Forbidden,
    Code::NotFound,
    Code::BadUserInput,
    Code::Conflict,
    Code::LimitExceeded,
    Code::ScriptError,
    Code::Internal,
];

/// The counters of one server process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered, by (route, status class).
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// GraphQL errors returned, by `extensions.code`.
    errors: Mutex<BTreeMap<String, u64>>,
    script_runs: AtomicU64,
    script_run_failures: AtomicU64,
    websocket_connections: AtomicI64,
    websocket_operations: AtomicI64,
    subscription_streams: AtomicI64,
    /// Webhook attempts made by this process's dispatcher, by outcome.
    webhook_attempts: Mutex<BTreeMap<&'static str, u64>>,
    /// Pending webhook deliveries and the age of the oldest, in
    /// milliseconds, as last read (at scrape time).
    webhook_pending: AtomicI64,
    webhook_oldest_ms: AtomicI64,
}

/// The automation outbox as `/metrics` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Events not handled yet (pending, or claimed and running).
    pub pending: u64,
    /// Age of the oldest of them, in seconds (0 when there is none).
    pub lag_seconds: f64,
    /// Events kept as failed after their last attempt.
    pub failed: u64,
}

impl Metrics {
    /// Counts an answered HTTP request. `route` is the matched route
    /// (`/graphql`), never the raw path, so the label set stays small.
    pub fn http_request(&self, route: &str, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry((route.to_owned(), class)).or_default() += 1;
        }
    }

    /// Counts a GraphQL error returned to a client, by its `extensions.code`.
    pub fn graphql_error(&self, code: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code.to_owned()).or_default() += 1;
        }
    }

    /// Counts script runs recorded by the automation worker, `failed` of them failed.
    pub fn script_runs(&self, runs: u64, failed: u64) {
        self.script_runs.fetch_add(runs, Ordering::Relaxed);
        self.script_run_failures
            .fetch_add(failed, Ordering::Relaxed);
    }

    /// Counts a webhook attempt: `succeeded`, `retried` (failed, to be
    /// tried again) or `failed` (no more attempts).
    pub fn webhook_attempt(&self, outcome: &'static str) {
        if let Ok(mut attempts) = self.webhook_attempts.lock() {
            *attempts.entry(outcome).or_default() += 1;
        }
    }

    /// The webhook deliveries pending now and the age of the oldest (read
    /// from the database when `/metrics` is scraped).
    pub fn webhook_backlog(&self, pending: u64, oldest: std::time::Duration) {
        self.webhook_pending.store(
            i64::try_from(pending).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
        self.webhook_oldest_ms.store(
            i64::try_from(oldest.as_millis()).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// WebSocket connections opened (+1) or closed (-1).
    pub fn websocket_connections(&self, delta: i64) {
        self.websocket_connections
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// WebSocket operations started (+1) or finished (-1).
    pub fn websocket_operations(&self, delta: i64) {
        self.websocket_operations
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Counts a live subscription stream until the returned guard is dropped.
    pub fn subscription_stream(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.subscription_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(std::sync::Arc::clone(self))
    }

    /// The Prometheus text exposition (format 0.0.4) of the counters and `backlog`.
    pub fn render(&self, backlog: Option<Backlog>) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "tagsmith_http_requests_total",
            "counter",
            "HTTP requests answered, by matched route and status class.",
        );
        if let Ok(requests) = self.requests.lock() {
            for ((route, class), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "tagsmith_http_requests_total{{route=\"{}\",status=\"{class}\"}} {count}",
                    escape(route)
                );
            }
        }
        family(
            &mut out,
            "tagsmith_graphql_errors_total",
            "counter",
            "GraphQL errors returned to clients, by extensions.code.",
        );
        if let Ok(errors) = self.errors.lock() {
            let mut all: BTreeMap<&str, u64> =
                CODES.iter().map(|code| (code.as_str(), 0)).collect();
            for (code, count) in errors.iter() {
                *all.entry(code.as_str()).or_default() += count;
            }
            for (code, count) in all {
                let _ = writeln!(
                    out,
                    "tagsmith_graphql_errors_total{{code=\"{}\"}} {count}",
                    escape(code)
                );
            }
        }
        let runs = self.script_runs.load(Ordering::Relaxed);
        let failures = self.script_run_failures.load(Ordering::Relaxed);
        family(
            &mut out,
            "tagsmith_script_runs_total",
            "counter",
            "Script runs recorded by this process's automation worker.",
        );
        let _ = writeln!(out, "tagsmith_script_runs_total {runs}");
        family(
            &mut out,
            "tagsmith_script_run_failures_total",
            "counter",
            "Script runs that failed (error, limit, bad plan), of those recorded by this process's worker.",
        );
        let _ = writeln!(out, "tagsmith_script_run_failures_total {failures}");
        for (name, help, value) in [
            (
                "tagsmith_websocket_connections",
                "Open WebSocket connections with a valid key.",
                &self.websocket_connections,
            ),
            (
                "tagsmith_websocket_operations",
                "Operations running on WebSocket connections (subscriptions, and queries not finished).",
                &self.websocket_operations,
            ),
            (
                "tagsmith_subscription_streams",
                "Subscription streams alive in this process (each holds its place in the change feed).",
                &self.subscription_streams,
            ),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        family(
            &mut out,
            "tagsmith_webhook_attempts_total",
            "counter",
            "Webhook delivery attempts by this process, by outcome: succeeded, retried (failed, tried again later), failed (no more attempts).",
        );
        if let Ok(attempts) = self.webhook_attempts.lock() {
            for outcome in ["succeeded", "retried", "failed"] {
                let count = attempts.get(outcome).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "tagsmith_webhook_attempts_total{{outcome=\"{outcome}\"}} {count}"
                );
            }
        }
        let pending = self.webhook_pending.load(Ordering::Relaxed);
        {
            family(
                &mut out,
                "tagsmith_webhook_pending_deliveries",
                "gauge",
                "Webhook deliveries waiting for an attempt or a retry, in every workspace.",
            );
            let _ = writeln!(out, "tagsmith_webhook_pending_deliveries {pending}");
            family(
                &mut out,
                "tagsmith_webhook_oldest_pending_seconds",
                "gauge",
                "Age of the oldest pending webhook delivery, in seconds (0 when none).",
            );
            let _ = writeln!(
                out,
                "tagsmith_webhook_oldest_pending_seconds {:.3}",
                self.webhook_oldest_ms.load(Ordering::Relaxed) as f64 / 1000.0
            );
        }
        family(
            &mut out,
            "tagsmith_outbox_up",
            "gauge",
            "1 when the outbox figures below could be read from the database, else 0.",
        );
        let _ = writeln!(out, "tagsmith_outbox_up {}", u8::from(backlog.is_some()));
        if let Some(backlog) = backlog {
            family(
                &mut out,
                "tagsmith_outbox_pending_events",
                "gauge",
                "Automation events not handled yet (pending or running), in every workspace.",
            );
            let _ = writeln!(out, "tagsmith_outbox_pending_events {}", backlog.pending);
            family(
                &mut out,
                "tagsmith_outbox_lag_seconds",
                "gauge",
                "Age of the oldest automation event not handled yet, in seconds (0 when none).",
            );
            let _ = writeln!(
                out,
                "tagsmith_outbox_lag_seconds {:.3}",
                backlog.lag_seconds
            );
            family(
                &mut out,
                "tagsmith_outbox_failed_events",
                "gauge",
                "Automation events kept as failed after their last attempt.",
            );
            let _ = writeln!(out, "tagsmith_outbox_failed_events {}", backlog.failed);
        }
        out
    }
}

/// A live subscription stream, counted until dropped.
#[derive(Debug)]
pub struct StreamGuard(std::sync::Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.subscription_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let metrics = Metrics::default();
        metrics.http_request("/graphql", 200);
        metrics.http_request("/graphql", 200);
        metrics.http_request("/graphql", 413);
        metrics.http_request("unmatched \"x\"", 404);
        metrics.graphql_error("LIMIT_EXCEEDED");
        metrics.script_runs(3, 1);
        let text = metrics.render(Some(Backlog {
            pending: 4,
            lag_seconds: 1.5,
            failed: 2,
        }));
        expect_test::expect![[r##"
            # HELP tagsmith_http_requests_total HTTP requests answered, by matched route and status class.
            # TYPE tagsmith_http_requests_total counter
            tagsmith_http_requests_total{route="/graphql",status="2xx"} 2
            tagsmith_http_requests_total{route="/graphql",status="4xx"} 1
            tagsmith_http_requests_total{route="unmatched \"x\"",status="4xx"} 1
            # HELP tagsmith_graphql_errors_total GraphQL errors returned to clients, by extensions.code.
            # TYPE tagsmith_graphql_errors_total counter
            tagsmith_graphql_errors_total{code="BAD_USER_INPUT"} 0
            tagsmith_graphql_errors_total{code="CONFLICT"} 0
            tagsmith_graphql_errors_total{code="FORBIDDEN"} 0
            tagsmith_graphql_errors_total{code="INTERNAL"} 0
            tagsmith_graphql_errors_total{code="LIMIT_EXCEEDED"} 1
            tagsmith_graphql_errors_total{code="NOT_FOUND"} 0
            tagsmith_graphql_errors_total{code="SCRIPT_ERROR"} 0
            tagsmith_graphql_errors_total{code="UNAUTHENTICATED"} 0
            # HELP tagsmith_script_runs_total Script runs recorded by this process's automation worker.
            # TYPE tagsmith_script_runs_total counter
            tagsmith_script_runs_total 3
            # HELP tagsmith_script_run_failures_total Script runs that failed (error, limit, bad plan), of those recorded by this process's worker.
            # TYPE tagsmith_script_run_failures_total counter
            tagsmith_script_run_failures_total 1
            # HELP tagsmith_websocket_connections Open WebSocket connections with a valid key.
            # TYPE tagsmith_websocket_connections gauge
            tagsmith_websocket_connections 0
            # HELP tagsmith_websocket_operations Operations running on WebSocket connections (subscriptions, and queries not finished).
            # TYPE tagsmith_websocket_operations gauge
            tagsmith_websocket_operations 0
            # HELP tagsmith_subscription_streams Subscription streams alive in this process (each holds its place in the change feed).
            # TYPE tagsmith_subscription_streams gauge
            tagsmith_subscription_streams 0
            # HELP tagsmith_webhook_attempts_total Webhook delivery attempts by this process, by outcome: succeeded, retried (failed, tried again later), failed (no more attempts).
            # TYPE tagsmith_webhook_attempts_total counter
            tagsmith_webhook_attempts_total{outcome="succeeded"} 0
            tagsmith_webhook_attempts_total{outcome="retried"} 0
            tagsmith_webhook_attempts_total{outcome="failed"} 0
            # HELP tagsmith_webhook_pending_deliveries Webhook deliveries waiting for an attempt or a retry, in every workspace.
            # TYPE tagsmith_webhook_pending_deliveries gauge
            tagsmith_webhook_pending_deliveries 0
            # HELP tagsmith_webhook_oldest_pending_seconds Age of the oldest pending webhook delivery, in seconds (0 when none).
            # TYPE tagsmith_webhook_oldest_pending_seconds gauge
            tagsmith_webhook_oldest_pending_seconds 0.000
            # HELP tagsmith_outbox_up 1 when the outbox figures below could be read from the database, else 0.
            # TYPE tagsmith_outbox_up gauge
            tagsmith_outbox_up 1
            # HELP tagsmith_outbox_pending_events Automation events not handled yet (pending or running), in every workspace.
            # TYPE tagsmith_outbox_pending_events gauge
            tagsmith_outbox_pending_events 4
            # HELP tagsmith_outbox_lag_seconds Age of the oldest automation event not handled yet, in seconds (0 when none).
            # TYPE tagsmith_outbox_lag_seconds gauge
            tagsmith_outbox_lag_seconds 1.500
            # HELP tagsmith_outbox_failed_events Automation events kept as failed after their last attempt.
            # TYPE tagsmith_outbox_failed_events gauge
            tagsmith_outbox_failed_events 2
        "##]]
        .assert_eq(&text);
    }
}

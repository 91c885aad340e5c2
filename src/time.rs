//! The clock, truncated to microseconds so SQLite and PostgreSQL store the same value.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time, in microseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The clock that segment filters read as `now`: the system clock, which
/// tests can move forward (the offset is shared by every clone).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The current instant of this clock, in microseconds.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = chrono::TimeDelta::microseconds(self.offset_micros.load(Ordering::Relaxed));
        now() + offset
    }

    /// Moves this clock (and its clones) forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

//! The clock, truncated to microseconds so SQLite and PostgreSQL store the same value.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time, in microseconds.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

//! Retries: the schedule of waits, `Retry-After`, and what an attempt's
//! answer means for its delivery. Pure.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Longest wait a `Retry-After` header may ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Reads `250ms`, `5s`, `5m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 5s or 10m"))?;
    let millis = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    Ok(Duration::from_millis(number.saturating_mul(millis)))
}

/// Reads a comma-separated retry schedule (`5s,5m,30m`); empty: no retries.
pub fn parse_schedule(text: &str) -> Result<Vec<Duration>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_duration)
        .collect()
}

/// `wait` give or take 10%, `random` being uniform in [0, 1).
pub fn jittered(wait: Duration, random: f64) -> Duration {
    wait.mul_f64(0.9 + 0.2 * random.clamp(0.0, 1.0))
}

/// Reads a `Retry-After` header: seconds, or an HTTP date; capped at
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - now).to_std().unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status (and maybe `Retry-After`).
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: refused, timed out, or not allowed to connect.
    NoAnswer,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Try again after this long.
    Retry(Duration),
    /// No more attempts.
    Failed,
    /// 410 Gone: failed, and the webhook is disabled.
    Disable,
}

/// The verdict on an attempt, the `attempts`-th of its delivery (1 for the
/// first), under `schedule` (the waits before the 2nd, 3rd, ... attempts).
pub fn verdict(answer: &Answer, attempts: i32, schedule: &[Duration], random: f64) -> Verdict {
    let status = match answer {
        Answer::Status { code, .. } => Some(*code),
        Answer::NoAnswer => None,
    };
    match status {
        Some(200..=299) => return Verdict::Succeeded,
        Some(410) => return Verdict::Disable,
        _ => {}
    }
    let Some(wait) = usize::try_from(attempts - 1)
        .ok()
        .and_then(|done| schedule.get(done))
    else {
        return Verdict::Failed;
    };
    match answer {
        Answer::Status {
            code: 429 | 503,
            retry_after: Some(asked),
        } => Verdict::Retry(*asked),
        _ => Verdict::Retry(jittered(*wait, random)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn schedules() {
        assert_eq!(
            parse_schedule("5s,5m,30m,2h,5h,10h,10h").unwrap(),
            [5, 300, 1800, 7200, 18000, 36000, 36000].map(secs)
        );
        assert_eq!(
            parse_schedule(" 50ms , 1s").unwrap(),
            [Duration::from_millis(50), secs(1)]
        );
        assert_eq!(parse_schedule("").unwrap(), Vec::<Duration>::new());
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("5d").is_err());
        assert!(parse_schedule("x5s").is_err());
    }

    #[test]
    fn verdicts() {
        let schedule = [secs(5), secs(300)];
        let status = |code| Answer::Status {
            code,
            retry_after: None,
        };
        let cases = [
            (status(200), 1, Verdict::Succeeded),
            (status(204), 3, Verdict::Succeeded),
            (status(410), 1, Verdict::Disable),
            (status(500), 1, Verdict::Retry(secs(5))),
            (Answer::NoAnswer, 2, Verdict::Retry(secs(300))),
            (status(500), 3, Verdict::Failed),
            (status(301), 1, Verdict::Retry(secs(5))),
            (
                Answer::Status {
                    code: 429,
                    retry_after: Some(secs(42)),
                },
                1,
                Verdict::Retry(secs(42)),
            ),
            (
                Answer::Status {
                    code: 503,
                    retry_after: Some(secs(42)),
                },
                3,
                Verdict::Failed,
            ),
            (
                Answer::Status {
                    code: 500,
                    retry_after: Some(secs(42)),
                },
                1,
                Verdict::Retry(secs(5)),
            ),
        ];
        for (answer, attempts, expected) in cases {
            // random 0.5: no jitter
            assert_eq!(
                verdict(&answer, attempts, &schedule, 0.5),
                expected,
                "{answer:?} at attempt {attempts}"
            );
        }
        assert_eq!(jittered(secs(100), 0.0), secs(90));
        assert!(jittered(secs(100), 0.999) < secs(110));
    }

    #[test]
    fn retry_after_headers() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(secs(120))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(secs(0))
        );
        assert_eq!(retry_after("9999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }
}

//! Abuse limits counted in the database, so several instances share them.
//!
//! Each limit (`COUNT/WINDOW`) is a generic cell rate algorithm (GCRA) bucket: one row per
//! bucket key, whatever the load. A bucket absorbs a burst of `COUNT` attempts and then one per
//! `WINDOW ÷ COUNT`; it is full again `WINDOW` after its last attempt. [`take`] counts an
//! attempt *before* the work it guards, in the one database statement that decides whether it
//! may proceed, so a burst of parallel requests can never be evaluated more often than the
//! limit allows. Where a success should not count (a right password), the caller gives the
//! unit back with [`refund`].
//!
//! A bucket that every request of one client updates (its IP's) guarding the work of a
//! transaction is [`check`]ed first and [`take`]n last, right before the commit, with an
//! over-limit `take` failing the transaction so that nothing of the work stays. PostgreSQL
//! holds the bucket's row lock from the `take` until the commit: taken first, it made all of
//! a client's requests wait for each other's whole transaction (password resets from one
//! address: 445 req/s, PostgreSQL's time spent waiting on that lock). The early `check`, a
//! read, keeps a client that is over its limit as cheap as before; the late `take` still
//! decides, so a burst that passes the check together is still cut at the limit.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::config::Limit;
use crate::db::DbConnection;
use crate::db::repo;
use crate::metrics::Metrics;

/// The answer of a limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit (and, for [`take`], counted).
    Allowed,
    /// Over it: retry after this many seconds.
    Limited {
        /// Seconds until the bucket admits one more attempt.
        retry_after_secs: u64,
    },
}

impl Decision {
    /// Whether the attempt may proceed.
    pub fn allowed(self) -> bool {
        self == Self::Allowed
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The GCRA parameters of a limit: the time one unit occupies and the window, in microseconds.
fn cell(limit: Limit) -> (i64, i64) {
    let window = i64::try_from(limit.window.as_micros())
        .unwrap_or(i64::MAX / 4)
        .max(1);
    let interval = (window / i64::from(limit.max.max(1))).max(1);
    (interval, window)
}

/// Seconds until `bucket` admits one more attempt (at least 1).
fn retry_after(conn: &mut DbConnection, bucket: &str, limit: Limit, now: i64) -> QueryResult<u64> {
    let (interval, window) = cell(limit);
    let tat = repo::rate_limits::tat(conn, bucket)?.unwrap_or(now);
    let wait_us = tat.saturating_add(interval) - window - now;
    let secs = (wait_us + 999_999) / 1_000_000;
    Ok(u64::try_from(secs.max(1)).unwrap_or(1))
}

/// Counts one attempt in `bucket` if `limit` allows it, in one atomic statement; a refusal is
/// counted in `metrics` under the bucket's kind (never its key).
pub fn take(
    conn: &mut DbConnection,
    metrics: &Metrics,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    let (interval, window) = cell(limit);
    let now = micros(now);
    if repo::rate_limits::take(conn, bucket, now, interval, window)? {
        return Ok(Decision::Allowed);
    }
    metrics.rate_limited(bucket);
    Ok(Decision::Limited {
        retry_after_secs: retry_after(conn, bucket, limit, now)?,
    })
}

/// Whether `bucket` would admit one more attempt now, without counting one.
pub fn check(
    conn: &mut DbConnection,
    metrics: &Metrics,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    let (interval, window) = cell(limit);
    let now = micros(now);
    let tat = repo::rate_limits::tat(conn, bucket)?
        .unwrap_or(now)
        .max(now);
    if tat + interval - now <= window {
        return Ok(Decision::Allowed);
    }
    metrics.rate_limited(bucket);
    Ok(Decision::Limited {
        retry_after_secs: retry_after(conn, bucket, limit, now)?,
    })
}

/// Which half of a bucket that is checked first and taken last (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Before the work: [`check`], a read.
    Check,
    /// Last in the transaction: [`take`], which decides.
    Take,
}

/// Runs `step` on `bucket`: [`check`] or [`take`].
pub fn step(
    conn: &mut DbConnection,
    metrics: &Metrics,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
    step: Step,
) -> QueryResult<Decision> {
    match step {
        Step::Check => check(conn, metrics, bucket, limit, now),
        Step::Take => take(conn, metrics, bucket, limit, now),
    }
}

/// Counts one event in `bucket` whatever its state (something that happened and must count
/// against later attempts).
pub fn hit(
    conn: &mut DbConnection,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let (interval, _) = cell(limit);
    repo::rate_limits::add(conn, bucket, micros(now), interval)
}

/// Gives back one unit taken from `bucket` (an attempt that should not count).
pub fn refund(conn: &mut DbConnection, bucket: &str, limit: Limit) -> QueryResult<()> {
    let (interval, _) = cell(limit);
    repo::rate_limits::refund(conn, bucket, interval)
}

/// Empties `bucket`.
pub fn reset(conn: &mut DbConnection, bucket: &str) -> QueryResult<()> {
    repo::rate_limits::clear(conn, bucket).map(|_| ())
}

/// Forgets buckets that are empty again (housekeeping); returns how many.
pub async fn prune(ctx: &crate::context::Ctx) -> Result<usize, crate::services::Failure> {
    let now = micros(ctx.clock.now());
    ctx.db
        .run(move |conn| Ok(repo::rate_limits::prune(conn, now)?))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_the_window_divided_by_the_count() {
        let (interval, window) = cell(Limit {
            max: 20,
            window: std::time::Duration::from_secs(3600),
        });
        assert_eq!(window, 3_600_000_000);
        assert_eq!(interval, 180_000_000);
        // Exactly COUNT attempts fit in an empty bucket: the n-th takes tat to now + n·T.
        assert!(20 * interval <= window);
        assert!(21 * interval > window);
    }
}

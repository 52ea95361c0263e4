//! Sliding-window limits counted in the database, so several instances share them.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::config::Limit;
use crate::db::DbConnection;
use crate::db::repo;
use crate::metrics::Metrics;

/// The answer of a limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Under the limit.
    Allowed,
    /// Over it: retry after this many seconds.
    Limited {
        /// Seconds until the oldest counted event leaves the window.
        retry_after_secs: u64,
    },
}

/// Whether `bucket` is over `limit` at `now` (the event being decided is not counted yet).
/// A refusal is counted in `metrics` under the bucket's kind.
pub fn check(
    conn: &mut DbConnection,
    metrics: &Metrics,
    bucket: &str,
    limit: Limit,
    now: DateTime<Utc>,
) -> QueryResult<Decision> {
    let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::hours(1));
    let since = now - window;
    let (count, oldest) = repo::rate_limits::count_since(conn, bucket, repo::naive(since))?;
    if count < i64::from(limit.max) {
        return Ok(Decision::Allowed);
    }
    metrics.rate_limited(bucket);
    let frees_at = oldest.map(repo::utc).unwrap_or(now) + window;
    let secs = (frees_at - now).num_seconds().max(1);
    Ok(Decision::Limited {
        retry_after_secs: u64::try_from(secs).unwrap_or(1),
    })
}

/// Counts one event in `bucket`.
pub fn hit(conn: &mut DbConnection, bucket: &str, now: DateTime<Utc>) -> QueryResult<()> {
    repo::rate_limits::hit(conn, bucket, repo::naive(now))
}

/// Forgets `bucket`'s events.
pub fn reset(conn: &mut DbConnection, bucket: &str) -> QueryResult<()> {
    repo::rate_limits::clear(conn, bucket).map(|_| ())
}

/// Forgets events that no limit's window reaches any more (housekeeping); returns how many.
pub async fn prune(ctx: &crate::context::Ctx) -> Result<usize, crate::services::Failure> {
    let window = chrono::Duration::from_std(ctx.config.rate_limits.longest_window())
        .unwrap_or(chrono::Duration::days(1));
    let before = repo::naive(ctx.clock.now() - window);
    ctx.db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| -> Result<usize, crate::services::Failure> {
                Ok(repo::rate_limits::prune(conn, before)?)
            })
        })
        .await
}

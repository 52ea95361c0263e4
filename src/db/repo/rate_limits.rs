//! The `rate_limit_hits` table: a sliding log of events per bucket, shared by every instance.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::rate_limit_hits;

/// Records one event in `bucket`.
pub fn hit(conn: &mut DbConnection, bucket: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(rate_limit_hits::table)
        .values((
            rate_limit_hits::bucket.eq(bucket),
            rate_limit_hits::at.eq(now),
        ))
        .execute(conn)
        .map(|_| ())
}

/// How many events `bucket` holds since `since`, and the oldest of them.
pub fn count_since(
    conn: &mut DbConnection,
    bucket: &str,
    since: NaiveDateTime,
) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    rate_limit_hits::table
        .filter(rate_limit_hits::bucket.eq(bucket))
        .filter(rate_limit_hits::at.gt(since))
        .select((count_star(), min(rate_limit_hits::at)))
        .get_result(conn)
}

/// Forgets every event of `bucket` (for example after a successful login).
pub fn clear(conn: &mut DbConnection, bucket: &str) -> QueryResult<usize> {
    diesel::delete(rate_limit_hits::table.filter(rate_limit_hits::bucket.eq(bucket))).execute(conn)
}

/// Deletes events older than `before` (housekeeping).
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(rate_limit_hits::table.filter(rate_limit_hits::at.lt(before))).execute(conn)
}

//! The `rate_limit_buckets` table: one row per limit bucket, shared by every instance.
//!
//! Each row holds the bucket's theoretical arrival time (`tat`, GCRA) in microseconds since the
//! Unix epoch. Taking one unit is a single upsert whose `WHERE` decides, so concurrent requests
//! (on one instance or several) can never take more than the limit allows: on PostgreSQL the
//! conflicting row is locked and the condition re-checked on its newest version, and SQLite
//! runs one writer at a time. The statements differ only in `GREATEST` (PostgreSQL) and the
//! two-argument `MAX` (SQLite), so each backend has its own text here.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use crate::db::schema::rate_limit_buckets;
use crate::db::{DbConnection, fixed, on_backend};

#[derive(QueryableByName)]
#[expect(dead_code, reason = "only whether the upsert returns a row matters")]
struct Tat {
    #[diesel(sql_type = BigInt)]
    tat: i64,
}

/// Takes one unit from `bucket` at `now_us` if the bucket allows it: `interval_us` is the time
/// one unit occupies (window ÷ count), `window_us` the burst the bucket absorbs. Answers whether
/// the unit was taken; the attempt is counted by this very statement.
pub fn take(
    conn: &mut DbConnection,
    bucket: &str,
    now_us: i64,
    interval_us: i64,
    window_us: i64,
) -> QueryResult<bool> {
    // The statement's cache keys (see [`fixed`]).
    struct TakePg;
    struct TakeSqlite;
    let rows: Vec<Tat> = match conn {
        DbConnection::Pg(c) => fixed::<TakePg, _>(
            diesel::sql_query(
                "INSERT INTO rate_limit_buckets AS r (bucket, tat) VALUES ($1, $2 + $3) \
             ON CONFLICT (bucket) DO UPDATE SET tat = GREATEST(r.tat, $2) + $3 \
             WHERE GREATEST(r.tat, $2) + $3 - $2 <= $4 RETURNING r.tat",
            )
            .bind::<Text, _>(bucket)
            .bind::<BigInt, _>(now_us)
            .bind::<BigInt, _>(interval_us)
            .bind::<BigInt, _>(window_us),
        )
        .load(c)?,
        DbConnection::Sqlite(c) => fixed::<TakeSqlite, _>(
            diesel::sql_query(
                "INSERT INTO rate_limit_buckets (bucket, tat) VALUES (?1, ?2 + ?3) \
             ON CONFLICT (bucket) DO UPDATE SET tat = MAX(rate_limit_buckets.tat, ?2) + ?3 \
             WHERE MAX(rate_limit_buckets.tat, ?2) + ?3 - ?2 <= ?4 RETURNING tat",
            )
            .bind::<Text, _>(bucket)
            .bind::<BigInt, _>(now_us)
            .bind::<BigInt, _>(interval_us)
            .bind::<BigInt, _>(window_us),
        )
        .load(c)?,
    };
    Ok(!rows.is_empty())
}

/// Adds one unit to `bucket` whatever its state (an event that happened and must count).
pub fn add(
    conn: &mut DbConnection,
    bucket: &str,
    now_us: i64,
    interval_us: i64,
) -> QueryResult<()> {
    // Loaded, not executed, so that the statement is cached (see [`fixed`]).
    struct AddPg;
    struct AddSqlite;
    match conn {
        DbConnection::Pg(c) => fixed::<AddPg, _>(
            diesel::sql_query(
                "INSERT INTO rate_limit_buckets AS r (bucket, tat) VALUES ($1, $2 + $3) \
             ON CONFLICT (bucket) DO UPDATE SET tat = GREATEST(r.tat, $2) + $3 RETURNING r.tat",
            )
            .bind::<Text, _>(bucket)
            .bind::<BigInt, _>(now_us)
            .bind::<BigInt, _>(interval_us),
        )
        .load::<Tat>(c)?,
        DbConnection::Sqlite(c) => fixed::<AddSqlite, _>(
            diesel::sql_query(
                "INSERT INTO rate_limit_buckets (bucket, tat) VALUES (?1, ?2 + ?3) \
             ON CONFLICT (bucket) DO UPDATE SET tat = MAX(rate_limit_buckets.tat, ?2) + ?3 \
             RETURNING tat",
            )
            .bind::<Text, _>(bucket)
            .bind::<BigInt, _>(now_us)
            .bind::<BigInt, _>(interval_us),
        )
        .load::<Tat>(c)?,
    };
    Ok(())
}

/// Gives one unit back to `bucket` (an attempt that turned out not to count).
pub fn refund(conn: &mut DbConnection, bucket: &str, interval_us: i64) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::update(rate_limit_buckets::table.find(bucket))
            .set(rate_limit_buckets::tat.eq(rate_limit_buckets::tat - interval_us))
            .execute(conn)
            .map(|_| ())
    })
}

/// The bucket's theoretical arrival time, if it has a row.
pub fn tat(conn: &mut DbConnection, bucket: &str) -> QueryResult<Option<i64>> {
    on_backend!(conn, |conn| {
        rate_limit_buckets::table
            .find(bucket)
            .select(rate_limit_buckets::tat)
            .get_result(conn)
            .optional()
    })
}

/// Empties `bucket`.
pub fn clear(conn: &mut DbConnection, bucket: &str) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::delete(rate_limit_buckets::table.find(bucket)).execute(conn)
    })
}

/// Deletes buckets that are empty by `now_us` (housekeeping): an absent row and a row whose
/// `tat` has passed mean the same.
pub fn prune(conn: &mut DbConnection, now_us: i64) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::delete(rate_limit_buckets::table.filter(rate_limit_buckets::tat.le(now_us)))
            .execute(conn)
    })
}

//! The review queue's reads: a page of it for support, a request with its place in it for the
//! requester, and the waits of recent decisions for the requester's estimate.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::{RequestRow, all, lower};
use crate::db::repo::{Page, naive};
use crate::db::schema::recovery_requests;
use crate::db::{DbConnection, fixed, on_backend};
use crate::domain::{RecoveryRequest, RecoveryStatus, RequestId};

/// One page of the queue (only `status`, only `username` when given), oldest first, and the
/// total.
pub fn list(
    conn: &mut DbConnection,
    status: Option<RecoveryStatus>,
    username: Option<&str>,
    page: Page,
) -> QueryResult<(Vec<RecoveryRequest>, i64)> {
    on_backend!(conn, |conn| {
        let build = || {
            let mut q = recovery_requests::table.into_boxed();
            if let Some(s) = status {
                q = q.filter(recovery_requests::status.eq(s.as_str()));
            }
            if let Some(u) = username {
                // Both sides through the backend's own lower(): an exact match always matches.
                q = q.filter(lower(recovery_requests::username).eq(lower(u.to_owned())));
            }
            q
        };
        let total = build().count().get_result(conn)?;
        let rows = build()
            .order((
                recovery_requests::submitted_at.asc(),
                recovery_requests::id.asc(),
            ))
            .limit(page.per_page)
            .offset(page.offset())
            .select(RequestRow::as_select())
            .load(conn)?;
        Ok((all(rows)?, total))
    })
}

/// How long each request decided since `since` waited for its decision (decision time minus
/// submission time), shortest first: one range over the `decided_at` index.
pub fn decision_times_since(
    conn: &mut DbConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<chrono::Duration>> {
    on_backend!(conn, |conn| {
        let rows: Vec<(NaiveDateTime, Option<NaiveDateTime>)> = recovery_requests::table
            .filter(recovery_requests::decided_at.ge(naive(since)))
            .select((
                recovery_requests::submitted_at,
                recovery_requests::decided_at,
            ))
            .load(conn)?;
        let mut times: Vec<chrono::Duration> = rows
            .into_iter()
            .filter_map(|(submitted, decided)| decided.map(|d| d - submitted))
            .collect();
        times.sort();
        Ok(times)
    })
}

/// [`find_tracked_in_queue`] reads it.
#[derive(QueryableByName)]
struct TrackedInQueue {
    #[diesel(embed)]
    request: RequestRow,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    waiting_ahead: Option<i64>,
}

/// Like [`find_tracked`](super::find_tracked), with the number of queued requests
/// ([`RecoveryStatus::QUEUED`]) filed before it when the request is queued itself (`None` when
/// it is not): what the requester's status view shows, in one statement and one round trip
/// instead of two. Ties in
/// `submitted_at` are broken by id, as the queue orders them; the count is one range of the
/// `(status, submitted_at)` index (`submitted_at <=` gives SQLite the range; written as one
/// `OR`, it picked another index). Diesel's query builder cannot put a subquery beside a
/// table's columns, so this one is written out.
pub fn find_tracked_in_queue(
    conn: &mut DbConnection,
    id: &RequestId,
    tracking_hash: &str,
) -> QueryResult<Option<(RecoveryRequest, Option<i64>)>> {
    // SQLite numbers `$N` parameters in the order they first appear in the text, so they
    // appear here in the order they are bound.
    const SQL: &str = "SELECT r.*, CASE WHEN r.status IN ($1, $2) THEN \
         (SELECT count(*) FROM recovery_requests AS ahead \
          WHERE ahead.status IN ($1, $2) AND ahead.submitted_at <= r.submitted_at \
          AND (ahead.submitted_at < r.submitted_at OR ahead.id < r.id)) END AS waiting_ahead \
         FROM recovery_requests AS r WHERE r.id = $3 AND r.tracking_token_hash = $4";
    struct FindTrackedInQueue;
    let [first, second] = RecoveryStatus::QUEUED;
    let row = on_backend!(conn, |c| fixed::<FindTrackedInQueue, _>(
        diesel::sql_query(SQL)
            .bind::<diesel::sql_types::Text, _>(first.as_str())
            .bind::<diesel::sql_types::Text, _>(second.as_str())
            .bind::<diesel::sql_types::Text, _>(id.as_str())
            .bind::<diesel::sql_types::Text, _>(tracking_hash)
    )
    .get_result::<TrackedInQueue>(c))
    .optional()?;
    row.map(|row| Ok((row.request.into_domain()?, row.waiting_ahead)))
        .transpose()
}

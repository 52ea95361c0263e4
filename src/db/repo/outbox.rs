//! The `outbox` table: mails written in the transaction of the change that causes them, then
//! claimed and delivered by the dispatcher. This is where the few backend-specific statements
//! live (`FOR UPDATE SKIP LOCKED` on PostgreSQL).

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use crate::db::schema::outbox;
use crate::db::{DbConnection, RunTyped, on_backend};

/// A stored mail.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    /// Id (UUID).
    pub id: String,
    /// The `Message-ID` header, fixed at creation so a resend keeps it.
    pub message_id: String,
    /// The template's name, e.g. `verify_email`.
    pub kind: String,
    /// The recipient's address.
    pub recipient: String,
    /// The subject line.
    pub subject: String,
    /// Plain-text body (sealed when `sealed` is 1).
    pub body_text: String,
    /// HTML body (sealed when `sealed` is 1).
    pub body_html: String,
    /// 1 when the bodies are encrypted with the data key (they carry a link token).
    pub sealed: i32,
    /// When it was queued.
    pub created_at: NaiveDateTime,
    /// When it may be tried next.
    pub next_attempt_at: NaiveDateTime,
    /// Failed attempts so far.
    pub attempts: i32,
    /// The last failure, for operators.
    pub last_error: Option<String>,
    /// The dispatcher holding it.
    pub claimed_by: Option<String>,
    /// Until when that claim holds (a crashed dispatcher's claim runs out).
    pub claimed_until: Option<NaiveDateTime>,
    /// When the SMTP server accepted it.
    pub sent_at: Option<NaiveDateTime>,
    /// The recovery request it is about, if any.
    pub request_id: Option<String>,
    /// When it was given up: refused for good (5xx), or out of attempts or age.
    pub failed_at: Option<NaiveDateTime>,
}

/// What the requester and support see of a mail about a request.
#[derive(Debug, Clone)]
pub struct MailStatusRow {
    /// The template's name.
    pub kind: String,
    /// The recipient's address.
    pub recipient: String,
    /// When it was queued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the server accepted it.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was given up.
    pub failed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed attempts.
    pub attempts: i32,
    /// The server's last answer (or the connection error).
    pub last_error: Option<String>,
}

/// The mails about request `request_id`, oldest first: one read over the `request_id` index.
pub fn for_request(conn: &mut DbConnection, request_id: &str) -> QueryResult<Vec<MailStatusRow>> {
    on_backend!(conn, |conn| {
        outbox::table
            .filter(outbox::request_id.eq(request_id))
            .order((outbox::created_at.asc(), outbox::id.asc()))
            .select((
                outbox::kind,
                outbox::recipient,
                outbox::created_at,
                outbox::sent_at,
                outbox::failed_at,
                outbox::attempts,
                outbox::last_error,
            ))
            .load::<MailStatusTuple>(conn)
            .map(|rows| {
                rows.into_iter()
                    .map(
                        |(
                            kind,
                            recipient,
                            created_at,
                            sent_at,
                            failed_at,
                            attempts,
                            last_error,
                        )| {
                            MailStatusRow {
                                kind,
                                recipient,
                                created_at: crate::db::repo::utc(created_at),
                                sent_at: sent_at.map(crate::db::repo::utc),
                                failed_at: failed_at.map(crate::db::repo::utc),
                                attempts,
                                last_error,
                            }
                        },
                    )
                    .collect()
            })
    })
}

/// A mail's state as [`for_request`] reads it.
type MailStatusTuple = (
    String,
    String,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    i32,
    Option<String>,
);

/// Queues a mail (inside the caller's transaction).
pub fn insert(conn: &mut DbConnection, row: &OutboxRow) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(outbox::table)
            .values(row)
            .execute(conn)
            .map(|_| ())
    })
}

/// Claims up to `limit` due mails for `worker` until `lease_until`, so no other instance
/// takes them meanwhile. Run it inside a write transaction.
pub fn claim_due(
    conn: &mut DbConnection,
    worker: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let free = outbox::sent_at
        .is_null()
        .and(outbox::failed_at.is_null())
        .and(outbox::next_attempt_at.le(now))
        .and(
            outbox::claimed_until
                .is_null()
                .or(outbox::claimed_until.lt(now)),
        );
    let ids: Vec<String> = match conn {
        // Several instances: skip rows another transaction is claiming right now.
        DbConnection::Pg(pg) => outbox::table
            .filter(free)
            .order(outbox::next_attempt_at.asc())
            .limit(limit)
            .select(outbox::id)
            .for_update()
            .skip_locked()
            .load(pg)?,
        // SQLite: the IMMEDIATE transaction already excludes every other writer.
        DbConnection::Sqlite(lite) => outbox::table
            .filter(free)
            .order(outbox::next_attempt_at.asc())
            .limit(limit)
            .select(outbox::id)
            .load(lite)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)).filter(free))
        .set((
            outbox::claimed_by.eq(worker),
            outbox::claimed_until.eq(lease_until),
        ))
        .execute_typed(conn)?;
    on_backend!(conn, |c| outbox::table
        .filter(outbox::id.eq_any(&ids))
        .filter(outbox::claimed_by.eq(worker))
        .filter(outbox::sent_at.is_null())
        .filter(outbox::failed_at.is_null())
        .order(outbox::next_attempt_at.asc())
        .select(OutboxRow::as_select())
        .load(c))
}

/// Records the delivery of the mails `ids` that `worker` holds and wipes their bodies (they
/// may have carried a link token): one statement for a whole batch. Returns how many it
/// marked.
pub fn mark_sent(
    conn: &mut DbConnection,
    ids: &[String],
    worker: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    on_backend!(conn, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(ids))
                .filter(outbox::claimed_by.eq(worker)),
        )
        .set((
            outbox::sent_at.eq(now),
            outbox::body_text.eq(""),
            outbox::body_html.eq(""),
            outbox::claimed_by.eq(None::<String>),
            outbox::claimed_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
    })
}

/// Gives back `worker`'s claims on mails it has not sent, so another instance can take them
/// at once instead of after the lease; returns how many.
pub fn release_claims(conn: &mut DbConnection, worker: &str) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::claimed_by.eq(worker))
                .filter(outbox::sent_at.is_null()),
        )
        .set((
            outbox::claimed_by.eq(None::<String>),
            outbox::claimed_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
    })
}

/// Extends `worker`'s claims on mails it has not sent to `until`; returns how many.
pub fn renew_claims(
    conn: &mut DbConnection,
    worker: &str,
    until: NaiveDateTime,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::claimed_by.eq(worker))
                .filter(outbox::sent_at.is_null()),
        )
        .set(outbox::claimed_until.eq(until))
        .execute(conn)
    })
}

/// Records a failed attempt and when to try again, or (`given_up_at`) that it is not tried
/// again; releases the claim. A mail given up keeps its bodies until retention removes it
/// (sealed when they carry a link token).
pub fn mark_failed(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    error: &str,
    next_attempt_at: NaiveDateTime,
    given_up_at: Option<NaiveDateTime>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            outbox::table
                .filter(outbox::id.eq(id))
                .filter(outbox::claimed_by.eq(worker)),
        )
        .set((
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::last_error.eq(error),
            outbox::next_attempt_at.eq(next_attempt_at),
            outbox::failed_at.eq(given_up_at),
            outbox::claimed_by.eq(None::<String>),
            outbox::claimed_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Mails not yet delivered and when the oldest of them was queued.
pub fn backlog(
    conn: &mut DbConnection,
) -> QueryResult<(i64, Option<chrono::DateTime<chrono::Utc>>)> {
    outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::failed_at.is_null())
        .select((count_star(), diesel::dsl::min(outbox::created_at)))
        .get_result_typed::<(i64, Option<NaiveDateTime>)>(conn)
        .map(|(n, oldest)| (n, oldest.map(crate::db::repo::utc)))
}

/// The earliest time a pending mail becomes due, if any.
pub fn next_due(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    on_backend!(conn, |conn| {
        outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::failed_at.is_null())
            .select(diesel::dsl::min(outbox::next_attempt_at))
            .get_result(conn)
    })
}

/// Deletes the mails about request `request_id` that are delivered or given up (their bodies
/// and addresses with them); returns how many.
pub fn delete_finished_for_request(
    conn: &mut DbConnection,
    request_id: &str,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::delete(
            outbox::table
                .filter(outbox::request_id.eq(request_id))
                .filter(
                    outbox::sent_at
                        .is_not_null()
                        .or(outbox::failed_at.is_not_null()),
                ),
        )
        .execute(conn)
    })
}

/// Deletes up to `limit` mails delivered or given up before `before`; returns how many.
pub fn delete_finished_before(
    conn: &mut DbConnection,
    before: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        let before = crate::db::repo::naive(before);
        let ids: Vec<String> = outbox::table
            .filter(outbox::sent_at.le(before).or(outbox::failed_at.le(before)))
            .limit(limit)
            .select(outbox::id)
            .load(conn)?;
        if ids.is_empty() {
            return Ok(0);
        }
        diesel::delete(outbox::table.filter(outbox::id.eq_any(&ids))).execute(conn)
    })
}

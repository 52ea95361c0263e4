//! The background work on requests: reminders to a requester who has not answered, abandoning
//! a request left unanswered, and erasing the personal data of requests final long enough.
//! Every change is a conditional UPDATE whose row count decides between instances.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::{RequestRow, all, final_statuses};
use crate::db::DbConnection;
use crate::db::repo::naive;
use crate::db::schema::{
    recovery_request_attachments, recovery_request_messages, recovery_requests,
};
use crate::domain::{RecoveryRequest, RecoveryStatus, RequestId};

/// Requests waiting for the requester's answer since `since_before` or earlier and not yet
/// reminded.
pub fn to_remind(
    conn: &mut DbConnection,
    since_before: DateTime<Utc>,
) -> QueryResult<Vec<RecoveryRequest>> {
    all(recovery_requests::table
        .filter(recovery_requests::status.eq(RecoveryStatus::NeedsInfo.as_str()))
        .filter(recovery_requests::needs_info_since.le(naive(since_before)))
        .filter(recovery_requests::reminded_at.is_null())
        .select(RequestRow::as_select())
        .load(conn)?)
}

/// Claims the reminder of a request still waiting since `since`; the row count decides
/// between instances (and against a reply or a new question meanwhile).
pub fn claim_reminder(
    conn: &mut DbConnection,
    id: &RequestId,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        recovery_requests::table
            .find(id.as_str())
            .filter(recovery_requests::status.eq(RecoveryStatus::NeedsInfo.as_str()))
            .filter(recovery_requests::needs_info_since.eq(naive(since)))
            .filter(recovery_requests::reminded_at.is_null()),
    )
    .set(recovery_requests::reminded_at.eq(naive(now)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Requests waiting for the requester's answer since `since_before` or earlier.
pub fn unanswered_since(
    conn: &mut DbConnection,
    since_before: DateTime<Utc>,
) -> QueryResult<Vec<RecoveryRequest>> {
    all(recovery_requests::table
        .filter(recovery_requests::status.eq(RecoveryStatus::NeedsInfo.as_str()))
        .filter(recovery_requests::needs_info_since.le(naive(since_before)))
        .select(RequestRow::as_select())
        .load(conn)?)
}

/// Moves a request still waiting since `since` to `abandoned`; the row count decides between
/// instances (and against a reply or a new question meanwhile).
pub fn abandon(
    conn: &mut DbConnection,
    id: &RequestId,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::update(
        recovery_requests::table
            .find(id.as_str())
            .filter(recovery_requests::status.eq(RecoveryStatus::NeedsInfo.as_str()))
            .filter(recovery_requests::needs_info_since.eq(naive(since))),
    )
    .set((
        recovery_requests::status.eq(RecoveryStatus::Abandoned.as_str()),
        recovery_requests::updated_at.eq(naive(now)),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

/// Claims up to `limit` requests final and unchanged since `final_before` or earlier whose
/// personal data is still there (PostgreSQL: skipping rows another instance is claiming; SQLite's write
/// transactions run one at a time). Run it inside a write transaction.
pub fn due_for_erasure(
    conn: &mut DbConnection,
    final_before: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<RequestId>> {
    let due = recovery_requests::status
        .eq_any(final_statuses())
        .and(recovery_requests::updated_at.le(naive(final_before)))
        .and(recovery_requests::contact_email.ne(""));
    let ids: Vec<String> = match conn {
        DbConnection::Pg(pg) => recovery_requests::table
            .filter(due)
            .order(recovery_requests::updated_at.asc())
            .limit(limit)
            .select(recovery_requests::id)
            .for_update()
            .skip_locked()
            .load(pg)?,
        DbConnection::Sqlite(lite) => recovery_requests::table
            .filter(due)
            .order(recovery_requests::updated_at.asc())
            .limit(limit)
            .select(recovery_requests::id)
            .load(lite)?,
    };
    Ok(ids.into_iter().map(RequestId::from_stored).collect())
}

/// Erases the personal data (contact email, reason, decision texts, IP, user agent, sealed
/// tokens) and the messages and notes of a request final since `final_before` or earlier,
/// once: emptying `contact_email` (never empty on a live request) in the same conditional
/// UPDATE makes the row count decide. The
/// id, username, statuses, times and token hashes stay, so the request still answers with its
/// status.
pub fn erase_personal_data(
    conn: &mut DbConnection,
    id: &RequestId,
    final_before: DateTime<Utc>,
) -> QueryResult<bool> {
    let erased = diesel::update(
        recovery_requests::table
            .find(id.as_str())
            .filter(recovery_requests::status.eq_any(final_statuses()))
            .filter(recovery_requests::updated_at.le(naive(final_before)))
            .filter(recovery_requests::contact_email.ne("")),
    )
    .set((
        recovery_requests::contact_email.eq(""),
        recovery_requests::reason.eq(""),
        recovery_requests::tracking_token_sealed.eq(""),
        recovery_requests::ownership_token_sealed.eq(None::<String>),
        recovery_requests::decision_note.eq(None::<String>),
        recovery_requests::deliver_justification.eq(None::<String>),
        recovery_requests::submitted_ip.eq(None::<String>),
        recovery_requests::submitted_user_agent.eq(None::<String>),
    ))
    .execute(conn)?;
    if erased != 1 {
        return Ok(false);
    }
    diesel::delete(
        recovery_request_messages::table
            .filter(recovery_request_messages::request_id.eq(id.as_str())),
    )
    .execute(conn)?;
    diesel::delete(
        recovery_request_attachments::table
            .filter(recovery_request_attachments::request_id.eq(id.as_str())),
    )
    .execute(conn)?;
    Ok(true)
}

//! The `recovery_requests` and `recovery_request_messages` tables. Status changes are
//! conditional on the status they start from, so two concurrent actions cannot both win.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::repo::Page;
use crate::db::schema::{recovery_request_messages, recovery_requests};

diesel::define_sql_function! {
    /// SQL `lower()`: ASCII on SQLite; PostgreSQL also folds other letters its locale knows.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A stored request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_requests)]
pub struct RequestRow {
    /// Id (UUID).
    pub id: String,
    /// The username as submitted.
    pub username: String,
    /// The account it names, when one exists.
    pub account_id: Option<String>,
    /// Where the requester reads mail.
    pub contact_email: String,
    /// The requester's account of what happened.
    pub reason: String,
    /// The status (domain `RecoveryStatus`).
    pub status: String,
    /// SHA-256 of the tracking token.
    pub tracking_token_hash: String,
    /// The tracking token sealed with the data key (to mail the same link again).
    pub tracking_token_sealed: String,
    /// SHA-256 of the ownership link's token (sent to the account's verified email).
    pub ownership_token_hash: Option<String>,
    /// The ownership token sealed with the data key.
    pub ownership_token_sealed: Option<String>,
    /// `unanswered`, `proven` or `disputed`.
    pub ownership: String,
    /// When the owner answered.
    pub ownership_answered_at: Option<NaiveDateTime>,
    /// The open request for the same account that was there first.
    pub duplicate_of: Option<String>,
    /// When it was filed.
    pub submitted_at: NaiveDateTime,
    /// When it last changed.
    pub updated_at: NaiveDateTime,
    /// When it was approved or denied.
    pub decided_at: Option<NaiveDateTime>,
    /// Who decided: `support:<id>` or `system`.
    pub decided_by: Option<String>,
    /// The approval comment or the denial reason.
    pub decision_note: Option<String>,
    /// `account_email` or `contact_email`, with the justification when the latter.
    pub deliver_to: Option<String>,
    /// SHA-256 of the completion token.
    pub completion_token_hash: Option<String>,
    /// When the completion link is to be sent (after the waiting period, if any).
    pub link_due_at: Option<NaiveDateTime>,
    /// When it was sent.
    pub link_sent_at: Option<NaiveDateTime>,
    /// When it stops working.
    pub link_expires_at: Option<NaiveDateTime>,
    /// When the owner completed the recovery.
    pub completed_at: Option<NaiveDateTime>,
    /// Client IP at submission.
    pub submitted_ip: Option<String>,
    /// Client user agent at submission.
    pub submitted_user_agent: Option<String>,
}

/// Fields to change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = recovery_requests)]
pub struct RequestChanges {
    /// New status.
    pub status: Option<String>,
    /// Always set by [`update`].
    pub updated_at: Option<NaiveDateTime>,
    /// New ownership token hash.
    pub ownership_token_hash: Option<Option<String>>,
    /// New sealed ownership token.
    pub ownership_token_sealed: Option<Option<String>>,
    /// New ownership answer.
    pub ownership: Option<String>,
    /// When it was answered.
    pub ownership_answered_at: Option<Option<NaiveDateTime>>,
    /// Decision time.
    pub decided_at: Option<Option<NaiveDateTime>>,
    /// Decider.
    pub decided_by: Option<Option<String>>,
    /// Decision note.
    pub decision_note: Option<Option<String>>,
    /// Delivery choice.
    pub deliver_to: Option<Option<String>>,
    /// Completion token hash.
    pub completion_token_hash: Option<Option<String>>,
    /// When the link is due.
    pub link_due_at: Option<Option<NaiveDateTime>>,
    /// When the link was sent.
    pub link_sent_at: Option<Option<NaiveDateTime>>,
    /// When the link expires.
    pub link_expires_at: Option<Option<NaiveDateTime>>,
    /// When it was completed.
    pub completed_at: Option<Option<NaiveDateTime>>,
}

/// A message or internal note.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recovery_request_messages)]
pub struct MessageRow {
    /// Id.
    pub id: String,
    /// The request.
    pub request_id: String,
    /// `requester`, `support` or `note` (internal, never shown to the requester).
    pub kind: String,
    /// The support user who wrote it.
    pub author_id: Option<String>,
    /// The text.
    pub body: String,
    /// When.
    pub created_at: NaiveDateTime,
}

/// Stores a new request.
pub fn insert(conn: &mut DbConnection, row: &RequestRow) -> QueryResult<()> {
    diesel::insert_into(recovery_requests::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// A request by id.
pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<RequestRow>> {
    recovery_requests::table
        .find(id)
        .select(RequestRow::as_select())
        .get_result(conn)
        .optional()
}

/// A request by id and tracking token hash.
pub fn find_tracked(
    conn: &mut DbConnection,
    id: &str,
    tracking_hash: &str,
) -> QueryResult<Option<RequestRow>> {
    recovery_requests::table
        .find(id)
        .filter(recovery_requests::tracking_token_hash.eq(tracking_hash))
        .select(RequestRow::as_select())
        .get_result(conn)
        .optional()
}

/// A request by its ownership token hash.
pub fn find_by_ownership_token(
    conn: &mut DbConnection,
    hash: &str,
) -> QueryResult<Option<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::ownership_token_hash.eq(hash))
        .select(RequestRow::as_select())
        .get_result(conn)
        .optional()
}

/// A request by its completion token hash.
pub fn find_by_completion_token(
    conn: &mut DbConnection,
    hash: &str,
) -> QueryResult<Option<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::completion_token_hash.eq(hash))
        .select(RequestRow::as_select())
        .get_result(conn)
        .optional()
}

const OPEN: [&str; 5] = [
    "submitted",
    "in_review",
    "needs_info",
    "approved",
    "expired",
];

/// The oldest other open request for the account.
pub fn first_open_for_account(
    conn: &mut DbConnection,
    account_id: &str,
) -> QueryResult<Option<String>> {
    recovery_requests::table
        .filter(recovery_requests::account_id.eq(account_id))
        .filter(recovery_requests::status.eq_any(OPEN))
        .order(recovery_requests::submitted_at.asc())
        .select(recovery_requests::id)
        .first(conn)
        .optional()
}

/// Open requests filed with this contact address.
pub fn open_for_contact(conn: &mut DbConnection, email: &str) -> QueryResult<Vec<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::contact_email.eq(email))
        .filter(recovery_requests::status.eq_any(OPEN))
        .order(recovery_requests::submitted_at.asc())
        .select(RequestRow::as_select())
        .load(conn)
}

/// The account's other requests, oldest first.
pub fn for_account(conn: &mut DbConnection, account_id: &str) -> QueryResult<Vec<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::account_id.eq(account_id))
        .order(recovery_requests::submitted_at.asc())
        .select(RequestRow::as_select())
        .load(conn)
}

/// Applies `changes` if the request is still in `expected_status`; the row count decides.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    expected_status: &str,
    now: NaiveDateTime,
    mut changes: RequestChanges,
) -> QueryResult<bool> {
    changes.updated_at = Some(now);
    diesel::update(
        recovery_requests::table
            .find(id)
            .filter(recovery_requests::status.eq(expected_status)),
    )
    .set(&changes)
    .execute(conn)
    .map(|n| n == 1)
}

/// Approved requests whose held completion link is due now.
pub fn links_due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::status.eq("approved"))
        .filter(recovery_requests::link_sent_at.is_null())
        .filter(recovery_requests::link_due_at.le(now))
        .select(RequestRow::as_select())
        .load(conn)
}

/// Approved requests whose completion link ran out.
pub fn links_expired(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::status.eq("approved"))
        .filter(recovery_requests::link_expires_at.le(now))
        .select(RequestRow::as_select())
        .load(conn)
}

/// Requests the auto-approval policy may approve: ownership proven, no duplicate, waiting
/// since before `submitted_before`.
pub fn auto_approvable(
    conn: &mut DbConnection,
    submitted_before: NaiveDateTime,
) -> QueryResult<Vec<RequestRow>> {
    recovery_requests::table
        .filter(recovery_requests::status.eq_any(["submitted", "in_review"]))
        .filter(recovery_requests::ownership.eq("proven"))
        .filter(recovery_requests::duplicate_of.is_null())
        .filter(recovery_requests::account_id.is_not_null())
        .filter(recovery_requests::submitted_at.le(submitted_before))
        .select(RequestRow::as_select())
        .load(conn)
}

/// Filters of the support queue.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only this status.
    pub status: Option<String>,
    /// Only this username (ignoring case).
    pub username: Option<String>,
}

/// One page of the queue, oldest first, and the total.
pub fn list(
    conn: &mut DbConnection,
    filter: &QueueFilter,
    page: Page,
) -> QueryResult<(Vec<RequestRow>, i64)> {
    let build = || {
        let mut q = recovery_requests::table.into_boxed();
        if let Some(s) = &filter.status {
            q = q.filter(recovery_requests::status.eq(s.clone()));
        }
        if let Some(u) = &filter.username {
            // Both sides through the backend's own lower(): an exact match always matches.
            q = q.filter(lower(recovery_requests::username).eq(lower(u.clone())));
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
    Ok((rows, total))
}

/// Stores a message or note.
pub fn insert_message(conn: &mut DbConnection, row: &MessageRow) -> QueryResult<()> {
    diesel::insert_into(recovery_request_messages::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The request's messages, oldest first; notes only when `with_notes`.
pub fn messages(
    conn: &mut DbConnection,
    request_id: &str,
    with_notes: bool,
) -> QueryResult<Vec<MessageRow>> {
    let mut q = recovery_request_messages::table
        .filter(recovery_request_messages::request_id.eq(request_id))
        .into_boxed();
    if !with_notes {
        q = q.filter(recovery_request_messages::kind.ne("note"));
    }
    q.order((
        recovery_request_messages::created_at.asc(),
        recovery_request_messages::id.asc(),
    ))
    .select(MessageRow::as_select())
    .load(conn)
}

/// Claims the sending of an approved request's completion link: stores the token hash and the
/// times if no link was sent yet; the row count decides between instances.
pub fn claim_link(
    conn: &mut DbConnection,
    id: &str,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(
        recovery_requests::table
            .find(id)
            .filter(recovery_requests::status.eq("approved"))
            .filter(recovery_requests::link_sent_at.is_null()),
    )
    .set((
        recovery_requests::completion_token_hash.eq(token_hash),
        recovery_requests::link_sent_at.eq(now),
        recovery_requests::link_expires_at.eq(expires_at),
        recovery_requests::updated_at.eq(now),
    ))
    .execute(conn)
    .map(|n| n == 1)
}

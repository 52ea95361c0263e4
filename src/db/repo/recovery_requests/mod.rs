//! The `recovery_requests` table, with its messages ([`messages`]), attachments
//! ([`attachments`]), background work ([`due_work`]) and the review queue's reads ([`queue`])
//! in submodules. Status changes are
//! conditional on the status they start from, so two concurrent actions cannot both win.
//!
//! Rows go in and come out as the domain's [`RecoveryRequest`] and
//! [`RecoveryMessage`](crate::domain::RecoveryMessage): ids,
//! statuses, ownership answers, delivery choices and message kinds are stored as their stable
//! strings and parsed here, once, and times are converted between the stored naive UTC and
//! `DateTime<Utc>` here. A stored value that does not parse is a query error (logged), never a
//! panic and never a silent default.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::recovery_requests;
use crate::db::{DbConnection, on_backend};
use crate::domain::{
    AccountId, DeliverTo, DeviceId, Ownership, RecoveryRequest, RecoveryStatus, RequestId,
};

mod attachments;
mod due_work;
mod messages;
mod queue;

pub use attachments::{
    Attachment, AttachmentMeta, attachment, attachments, count_attachments, insert_attachment,
};
pub use due_work::{
    abandon, claim_reminder, due_for_erasure, erase_personal_data, to_remind, unanswered_since,
};
pub use messages::{insert_message, messages};
pub use queue::{decision_times_since, find_tracked_in_queue, list};

diesel::define_sql_function! {
    /// SQL `lower()`: ASCII on SQLite; PostgreSQL also folds other letters its locale knows.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A stored request, as the table has it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = recovery_requests)]
struct RequestRow {
    id: String,
    username: String,
    account_id: Option<String>,
    contact_email: String,
    reason: String,
    status: String,
    tracking_token_hash: String,
    tracking_token_sealed: String,
    ownership_token_hash: Option<String>,
    ownership_token_sealed: Option<String>,
    ownership: String,
    ownership_answered_at: Option<NaiveDateTime>,
    duplicate_of: Option<String>,
    submitted_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    decided_at: Option<NaiveDateTime>,
    decided_by: Option<String>,
    decision_note: Option<String>,
    deliver_to: Option<String>,
    deliver_justification: Option<String>,
    completion_token_hash: Option<String>,
    link_due_at: Option<NaiveDateTime>,
    link_sent_at: Option<NaiveDateTime>,
    link_expires_at: Option<NaiveDateTime>,
    completed_at: Option<NaiveDateTime>,
    submitted_ip: Option<String>,
    submitted_user_agent: Option<String>,
    submitted_device_id: Option<String>,
    first_approval_by: Option<String>,
    first_approval_at: Option<NaiveDateTime>,
    needs_info_since: Option<NaiveDateTime>,
    reminded_at: Option<NaiveDateTime>,
}

/// A stored value that is not one of its type's stable strings: a query error, logged with
/// the column and the row (never the value, which may be free text).
fn unreadable(column: &'static str, id: &str) -> diesel::result::Error {
    tracing::error!(
        column,
        recovery_request.id = id,
        "stored value in recovery_requests does not parse"
    );
    diesel::result::Error::DeserializationError(
        format!("recovery_requests.{column} of {id} holds an unknown value").into(),
    )
}

/// Reads `deliver_to` and its justification. Rows written before the justification had its
/// own column (and by instances of that version during a rolling deploy) hold
/// `contact_email: <justification>` in `deliver_to`.
fn delivery(
    id: &str,
    stored: Option<String>,
    justification: Option<String>,
) -> QueryResult<(Option<DeliverTo>, Option<String>)> {
    let Some(stored) = stored else {
        return Ok((None, justification));
    };
    let (choice, legacy) = match stored.split_once(": ") {
        Some((choice, rest)) if justification.is_none() => (choice, Some(rest.to_owned())),
        _ => (stored.as_str(), justification),
    };
    let choice = DeliverTo::parse(choice).ok_or_else(|| unreadable("deliver_to", id))?;
    Ok((Some(choice), legacy))
}

impl RequestRow {
    fn into_domain(self) -> QueryResult<RecoveryRequest> {
        let id = self.id;
        let status =
            RecoveryStatus::parse(&self.status).ok_or_else(|| unreadable("status", &id))?;
        let ownership =
            Ownership::parse(&self.ownership).ok_or_else(|| unreadable("ownership", &id))?;
        let (deliver_to, deliver_justification) =
            delivery(&id, self.deliver_to, self.deliver_justification)?;
        Ok(RecoveryRequest {
            username: self.username,
            account_id: self.account_id.map(AccountId::from_stored),
            contact_email: self.contact_email,
            reason: self.reason,
            status,
            tracking_token_hash: self.tracking_token_hash,
            tracking_token_sealed: self.tracking_token_sealed,
            ownership_token_hash: self.ownership_token_hash,
            ownership_token_sealed: self.ownership_token_sealed,
            ownership,
            ownership_answered_at: self.ownership_answered_at.map(utc),
            duplicate_of: self.duplicate_of.map(RequestId::from_stored),
            submitted_at: utc(self.submitted_at),
            updated_at: utc(self.updated_at),
            decided_at: self.decided_at.map(utc),
            decided_by: self.decided_by,
            decision_note: self.decision_note,
            deliver_to,
            deliver_justification,
            completion_token_hash: self.completion_token_hash,
            link_due_at: self.link_due_at.map(utc),
            link_sent_at: self.link_sent_at.map(utc),
            link_expires_at: self.link_expires_at.map(utc),
            completed_at: self.completed_at.map(utc),
            submitted_ip: self.submitted_ip,
            submitted_user_agent: self.submitted_user_agent,
            submitted_device_id: self.submitted_device_id.map(DeviceId::from_stored),
            first_approval_by: self.first_approval_by,
            first_approval_at: self.first_approval_at.map(utc),
            needs_info_since: self.needs_info_since.map(utc),
            reminded_at: self.reminded_at.map(utc),
            id: RequestId::from_stored(id),
        })
    }

    fn from_domain(r: &RecoveryRequest) -> Self {
        Self {
            id: r.id.as_str().to_owned(),
            username: r.username.clone(),
            account_id: r.account_id.as_ref().map(|a| a.as_str().to_owned()),
            contact_email: r.contact_email.clone(),
            reason: r.reason.clone(),
            status: r.status.as_str().to_owned(),
            tracking_token_hash: r.tracking_token_hash.clone(),
            tracking_token_sealed: r.tracking_token_sealed.clone(),
            ownership_token_hash: r.ownership_token_hash.clone(),
            ownership_token_sealed: r.ownership_token_sealed.clone(),
            ownership: r.ownership.as_str().to_owned(),
            ownership_answered_at: r.ownership_answered_at.map(naive),
            duplicate_of: r.duplicate_of.as_ref().map(|d| d.as_str().to_owned()),
            submitted_at: naive(r.submitted_at),
            updated_at: naive(r.updated_at),
            decided_at: r.decided_at.map(naive),
            decided_by: r.decided_by.clone(),
            decision_note: r.decision_note.clone(),
            deliver_to: r.deliver_to.map(|d| d.as_str().to_owned()),
            deliver_justification: r.deliver_justification.clone(),
            completion_token_hash: r.completion_token_hash.clone(),
            link_due_at: r.link_due_at.map(naive),
            link_sent_at: r.link_sent_at.map(naive),
            link_expires_at: r.link_expires_at.map(naive),
            completed_at: r.completed_at.map(naive),
            submitted_ip: r.submitted_ip.clone(),
            submitted_user_agent: r.submitted_user_agent.clone(),
            submitted_device_id: r
                .submitted_device_id
                .as_ref()
                .map(|d| d.as_str().to_owned()),
            first_approval_by: r.first_approval_by.clone(),
            first_approval_at: r.first_approval_at.map(naive),
            needs_info_since: r.needs_info_since.map(naive),
            reminded_at: r.reminded_at.map(naive),
        }
    }
}

fn all(rows: Vec<RequestRow>) -> QueryResult<Vec<RecoveryRequest>> {
    rows.into_iter().map(RequestRow::into_domain).collect()
}

fn one(row: Option<RequestRow>) -> QueryResult<Option<RecoveryRequest>> {
    row.map(RequestRow::into_domain).transpose()
}

/// Fields to change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct RequestChanges {
    /// New status.
    pub status: Option<RecoveryStatus>,
    /// New ownership token hash.
    pub ownership_token_hash: Option<Option<String>>,
    /// New sealed ownership token.
    pub ownership_token_sealed: Option<Option<String>>,
    /// New ownership answer.
    pub ownership: Option<Ownership>,
    /// When it was answered.
    pub ownership_answered_at: Option<Option<DateTime<Utc>>>,
    /// Decision time.
    pub decided_at: Option<Option<DateTime<Utc>>>,
    /// Decider: `support:<id>` or `system`.
    pub decided_by: Option<Option<String>>,
    /// Decision note.
    pub decision_note: Option<Option<String>>,
    /// Delivery choice.
    pub deliver_to: Option<Option<DeliverTo>>,
    /// Why the contact email.
    pub deliver_justification: Option<Option<String>>,
    /// Completion token hash.
    pub completion_token_hash: Option<Option<String>>,
    /// When the link is due.
    pub link_due_at: Option<Option<DateTime<Utc>>>,
    /// When the link was sent.
    pub link_sent_at: Option<Option<DateTime<Utc>>>,
    /// When the link expires.
    pub link_expires_at: Option<Option<DateTime<Utc>>>,
    /// When it was completed.
    pub completed_at: Option<Option<DateTime<Utc>>>,
    /// The support account of the first of two approvals.
    pub first_approval_by: Option<Option<String>>,
    /// When it was given.
    pub first_approval_at: Option<Option<DateTime<Utc>>>,
    /// Since when the request waits for the requester's answer.
    pub needs_info_since: Option<Option<DateTime<Utc>>>,
    /// When the requester was reminded.
    pub reminded_at: Option<Option<DateTime<Utc>>>,
}

#[derive(AsChangeset)]
#[diesel(table_name = recovery_requests)]
struct ChangesRow {
    status: Option<String>,
    updated_at: NaiveDateTime,
    ownership_token_hash: Option<Option<String>>,
    ownership_token_sealed: Option<Option<String>>,
    ownership: Option<String>,
    ownership_answered_at: Option<Option<NaiveDateTime>>,
    decided_at: Option<Option<NaiveDateTime>>,
    decided_by: Option<Option<String>>,
    decision_note: Option<Option<String>>,
    deliver_to: Option<Option<String>>,
    deliver_justification: Option<Option<String>>,
    completion_token_hash: Option<Option<String>>,
    link_due_at: Option<Option<NaiveDateTime>>,
    link_sent_at: Option<Option<NaiveDateTime>>,
    link_expires_at: Option<Option<NaiveDateTime>>,
    completed_at: Option<Option<NaiveDateTime>>,
    first_approval_by: Option<Option<String>>,
    first_approval_at: Option<Option<NaiveDateTime>>,
    needs_info_since: Option<Option<NaiveDateTime>>,
    reminded_at: Option<Option<NaiveDateTime>>,
}

impl RequestChanges {
    fn into_row(self, now: DateTime<Utc>) -> ChangesRow {
        let time = |t: Option<Option<DateTime<Utc>>>| t.map(|t| t.map(naive));
        ChangesRow {
            status: self.status.map(|s| s.as_str().to_owned()),
            updated_at: naive(now),
            ownership_token_hash: self.ownership_token_hash,
            ownership_token_sealed: self.ownership_token_sealed,
            ownership: self.ownership.map(|o| o.as_str().to_owned()),
            ownership_answered_at: time(self.ownership_answered_at),
            decided_at: time(self.decided_at),
            decided_by: self.decided_by,
            decision_note: self.decision_note,
            deliver_to: self.deliver_to.map(|d| d.map(|d| d.as_str().to_owned())),
            deliver_justification: self.deliver_justification,
            completion_token_hash: self.completion_token_hash,
            link_due_at: time(self.link_due_at),
            link_sent_at: time(self.link_sent_at),
            link_expires_at: time(self.link_expires_at),
            completed_at: time(self.completed_at),
            first_approval_by: self.first_approval_by,
            first_approval_at: time(self.first_approval_at),
            needs_info_since: time(self.needs_info_since),
            reminded_at: time(self.reminded_at),
        }
    }
}

/// Stores a new request.
pub fn insert(conn: &mut DbConnection, request: &RecoveryRequest) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(recovery_requests::table)
            .values(&RequestRow::from_domain(request))
            .execute(conn)
            .map(|_| ())
    })
}

/// A request by id.
pub fn find(conn: &mut DbConnection, id: &RequestId) -> QueryResult<Option<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        one(recovery_requests::table
            .find(id.as_str())
            .select(RequestRow::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// A request by id and tracking token hash.
pub fn find_tracked(
    conn: &mut DbConnection,
    id: &RequestId,
    tracking_hash: &str,
) -> QueryResult<Option<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        one(recovery_requests::table
            .find(id.as_str())
            .filter(recovery_requests::tracking_token_hash.eq(tracking_hash))
            .select(RequestRow::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// A request by its ownership token hash.
pub fn find_by_ownership_token(
    conn: &mut DbConnection,
    hash: &str,
) -> QueryResult<Option<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        one(recovery_requests::table
            .filter(recovery_requests::ownership_token_hash.eq(hash))
            .select(RequestRow::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// A request by its completion token hash.
pub fn find_by_completion_token(
    conn: &mut DbConnection,
    hash: &str,
) -> QueryResult<Option<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        one(recovery_requests::table
            .filter(recovery_requests::completion_token_hash.eq(hash))
            .select(RequestRow::as_select())
            .get_result(conn)
            .optional()?)
    })
}

/// The stored strings of the statuses that are still open.
fn open_statuses() -> Vec<&'static str> {
    RecoveryStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .map(RecoveryStatus::as_str)
        .collect()
}

/// The stored strings of the final statuses.
fn final_statuses() -> Vec<&'static str> {
    RecoveryStatus::ALL
        .into_iter()
        .filter(|s| s.is_final())
        .map(RecoveryStatus::as_str)
        .collect()
}

/// The oldest other open request for the account.
pub fn first_open_for_account(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> QueryResult<Option<RequestId>> {
    recovery_requests::table
        .filter(recovery_requests::account_id.eq(account_id.as_str()))
        .filter(recovery_requests::status.eq_any(open_statuses()))
        .order(recovery_requests::submitted_at.asc())
        .select(recovery_requests::id)
        .first::<String>(conn)
        .optional()
        .map(|id| id.map(RequestId::from_stored))
}

/// Open requests filed with this contact address.
pub fn open_for_contact(conn: &mut DbConnection, email: &str) -> QueryResult<Vec<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        all(recovery_requests::table
            .filter(recovery_requests::contact_email.eq(email))
            .filter(recovery_requests::status.eq_any(open_statuses()))
            .order(recovery_requests::submitted_at.asc())
            .select(RequestRow::as_select())
            .load(conn)?)
    })
}

/// The account's requests, oldest first.
pub fn for_account(
    conn: &mut DbConnection,
    account_id: &AccountId,
) -> QueryResult<Vec<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        all(recovery_requests::table
            .filter(recovery_requests::account_id.eq(account_id.as_str()))
            .order(recovery_requests::submitted_at.asc())
            .select(RequestRow::as_select())
            .load(conn)?)
    })
}

/// Applies `changes` if the request is still in `expected_status`; the row count decides.
pub fn update(
    conn: &mut DbConnection,
    id: &RequestId,
    expected_status: RecoveryStatus,
    now: DateTime<Utc>,
    changes: RequestChanges,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        let row = changes.into_row(now);
        diesel::update(
            recovery_requests::table
                .find(id.as_str())
                .filter(recovery_requests::status.eq(expected_status.as_str())),
        )
        .set(&row)
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Applies `changes` only if the request is approved and its completion link, the one whose
/// token hashes to `token_hash`, was sent and is still live at `now`. The row count decides:
/// a link that was replaced, stopped or expired since it was looked up changes nothing.
pub fn update_with_live_link(
    conn: &mut DbConnection,
    id: &RequestId,
    token_hash: &str,
    now: DateTime<Utc>,
    changes: RequestChanges,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            recovery_requests::table
                .find(id.as_str())
                .filter(recovery_requests::status.eq(RecoveryStatus::Approved.as_str()))
                .filter(recovery_requests::completion_token_hash.eq(token_hash))
                .filter(recovery_requests::link_sent_at.is_not_null())
                .filter(recovery_requests::link_expires_at.gt(naive(now)))
                .filter(recovery_requests::ownership.ne(Ownership::Disputed.as_str())),
        )
        .set(&changes.into_row(now))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Approved requests whose held completion link is due now.
pub fn links_due(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<Vec<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        all(recovery_requests::table
            .filter(recovery_requests::status.eq(RecoveryStatus::Approved.as_str()))
            .filter(recovery_requests::link_sent_at.is_null())
            .filter(recovery_requests::link_due_at.le(naive(now)))
            .select(RequestRow::as_select())
            .load(conn)?)
    })
}

/// Approved requests whose completion link ran out.
pub fn links_expired(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        all(recovery_requests::table
            .filter(recovery_requests::status.eq(RecoveryStatus::Approved.as_str()))
            .filter(recovery_requests::link_expires_at.le(naive(now)))
            .select(RequestRow::as_select())
            .load(conn)?)
    })
}

/// Requests the auto-approval policy may approve: ownership proven, no duplicate, waiting
/// since before `submitted_before`.
pub fn auto_approvable(
    conn: &mut DbConnection,
    submitted_before: DateTime<Utc>,
) -> QueryResult<Vec<RecoveryRequest>> {
    on_backend!(conn, |conn| {
        all(recovery_requests::table
            .filter(recovery_requests::status.eq_any([
                RecoveryStatus::Submitted.as_str(),
                RecoveryStatus::InReview.as_str(),
            ]))
            .filter(recovery_requests::ownership.eq(Ownership::Proven.as_str()))
            .filter(recovery_requests::duplicate_of.is_null())
            .filter(recovery_requests::account_id.is_not_null())
            // Mailbox access alone is not enough: the request must also come from a device the
            // account knows.
            .filter(recovery_requests::submitted_device_id.is_not_null())
            .filter(recovery_requests::submitted_at.le(naive(submitted_before)))
            .select(RequestRow::as_select())
            .load(conn)?)
    })
}

/// Claims the sending of an approved request's completion link: stores the token hash and the
/// times if no link was sent yet; the row count decides between instances.
pub fn claim_link(
    conn: &mut DbConnection,
    id: &RequestId,
    token_hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            recovery_requests::table
                .find(id.as_str())
                .filter(recovery_requests::status.eq(RecoveryStatus::Approved.as_str()))
                .filter(recovery_requests::link_sent_at.is_null()),
        )
        .set((
            recovery_requests::completion_token_hash.eq(token_hash),
            recovery_requests::link_sent_at.eq(naive(now)),
            recovery_requests::link_expires_at.eq(naive(expires_at)),
            recovery_requests::updated_at.eq(naive(now)),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Records the first of two approvals by `support` if none is recorded yet and the request is
/// still in `expected_status`; the row count decides between two support accounts at once.
pub fn record_first_approval(
    conn: &mut DbConnection,
    id: &RequestId,
    expected_status: RecoveryStatus,
    support: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    on_backend!(conn, |conn| {
        diesel::update(
            recovery_requests::table
                .find(id.as_str())
                .filter(recovery_requests::status.eq(expected_status.as_str()))
                .filter(recovery_requests::first_approval_by.is_null()),
        )
        .set((
            recovery_requests::first_approval_by.eq(support),
            recovery_requests::first_approval_at.eq(naive(now)),
            recovery_requests::updated_at.eq(naive(now)),
        ))
        .execute(conn)
        .map(|n| n == 1)
    })
}

/// Locks the request's row until the transaction ends, so that a read followed by a status
/// change decides on the newest status (PostgreSQL, where concurrent transactions would
/// otherwise both read the old status; SQLite's write transactions already run one at a time).
pub fn lock(conn: &mut DbConnection, id: &RequestId) -> QueryResult<()> {
    if let DbConnection::Pg(c) = conn {
        diesel::sql_query("SELECT 1 FROM recovery_requests WHERE id = $1 FOR UPDATE")
            .bind::<diesel::sql_types::Text, _>(id.as_str())
            .execute(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_reads_both_columns_and_the_old_combined_form() {
        assert_eq!(delivery("r", None, None).ok(), Some((None, None)));
        assert_eq!(
            delivery("r", Some("account_email".into()), None).ok(),
            Some((Some(DeliverTo::AccountEmail), None))
        );
        assert_eq!(
            delivery("r", Some("contact_email".into()), Some("why: this".into())).ok(),
            Some((Some(DeliverTo::ContactEmail), Some("why: this".into())))
        );
        // Written before the justification had its own column: split on the first ": ".
        assert_eq!(
            delivery("r", Some("contact_email: why: this".into()), None).ok(),
            Some((Some(DeliverTo::ContactEmail), Some("why: this".into())))
        );
    }

    #[test]
    fn an_unknown_delivery_is_an_error_not_a_default() {
        assert!(delivery("r", Some("pigeon".into()), None).is_err());
        assert!(delivery("r", Some("pigeon: fast".into()), None).is_err());
    }
}

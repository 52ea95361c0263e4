//! The `audit_events` table: append-only. Nothing here updates or deletes a row.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{Page, naive, utc};
use crate::db::schema::audit_events;
use crate::db::{DbConnection, on_backend};

/// A stored event, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct AuditEventRow {
    id: i64,
    event_type: String,
    actor: String,
    account_id: Option<String>,
    request_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    at: NaiveDateTime,
    details: String,
}

impl AuditEventRow {
    fn into_stored(self) -> StoredEvent {
        StoredEvent {
            id: self.id,
            event_type: self.event_type,
            actor: self.actor,
            account_id: self.account_id,
            request_id: self.request_id,
            ip: self.ip,
            user_agent: self.user_agent,
            at: utc(self.at),
            details: self.details,
        }
    }
}

/// A stored event. The ids stay text: the log outlives what it names, and support filters it
/// by any id.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Sequence number.
    pub id: i64,
    /// Dotted type, e.g. `session.login_failed`.
    pub event_type: String,
    /// `account:<id>`, `support:<id>`, `system` or `anonymous`.
    pub actor: String,
    /// The account concerned.
    pub account_id: Option<String>,
    /// The recovery request concerned.
    pub request_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// JSON object with type-specific details (never a secret).
    pub details: String,
}

/// A new event.
#[derive(Debug)]
pub struct NewAuditEvent<'a> {
    /// Dotted type.
    pub event_type: &'a str,
    /// Who acted.
    pub actor: &'a str,
    /// The account concerned.
    pub account_id: Option<&'a str>,
    /// The recovery request concerned.
    pub request_id: Option<&'a str>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Client user agent.
    pub user_agent: Option<&'a str>,
    /// When.
    pub at: DateTime<Utc>,
    /// JSON details.
    pub details: &'a str,
}

/// Appends an event.
pub fn insert(conn: &mut DbConnection, event: &NewAuditEvent<'_>) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(audit_events::table)
            .values((
                audit_events::event_type.eq(event.event_type),
                audit_events::actor.eq(event.actor),
                audit_events::account_id.eq(event.account_id),
                audit_events::request_id.eq(event.request_id),
                audit_events::ip.eq(event.ip),
                audit_events::user_agent.eq(event.user_agent),
                audit_events::at.eq(naive(event.at)),
                audit_events::details.eq(event.details),
            ))
            .execute(conn)
            .map(|_| ())
    })
}

/// Filters for listing events; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this account's events.
    pub account_id: Option<String>,
    /// Only this recovery request's events.
    pub request_id: Option<String>,
    /// Only this type.
    pub event_type: Option<String>,
}

/// One page of events, newest first, and the total matching.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    page: Page,
) -> QueryResult<(Vec<StoredEvent>, i64)> {
    on_backend!(conn, |conn| {
        let build = || {
            let mut q = audit_events::table.into_boxed();
            if let Some(a) = &filter.account_id {
                q = q.filter(audit_events::account_id.eq(a.clone()));
            }
            if let Some(r) = &filter.request_id {
                q = q.filter(audit_events::request_id.eq(r.clone()));
            }
            if let Some(t) = &filter.event_type {
                q = q.filter(audit_events::event_type.eq(t.clone()));
            }
            q
        };
        let total = build().count().get_result(conn)?;
        let rows = build()
            .order(audit_events::id.desc())
            .limit(page.per_page)
            .offset(page.offset())
            .select(AuditEventRow::as_select())
            .load(conn)?;
        Ok((
            rows.into_iter().map(AuditEventRow::into_stored).collect(),
            total,
        ))
    })
}

/// Strips the free text and client traces (IP, user agent, details) from the events of request
/// `request_id`, keeping their types, times, actors and ids; returns how many.
pub fn strip_request_events(conn: &mut DbConnection, request_id: &str) -> QueryResult<usize> {
    on_backend!(conn, |conn| {
        diesel::update(audit_events::table.filter(audit_events::request_id.eq(request_id)))
            .set((
                audit_events::ip.eq(None::<String>),
                audit_events::user_agent.eq(None::<String>),
                audit_events::details.eq("{}"),
            ))
            .execute(conn)
    })
}

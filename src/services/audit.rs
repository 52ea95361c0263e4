//! Writes security events and support actions to the audit log, inside the caller's
//! transaction, and reads them back: whole for support (the audit-log query, [`events`]), and
//! trimmed for the account's owner ([`owner_view`]), who never sees support's internal text or
//! where support worked from.

use chrono::{DateTime, Utc};
use diesel::QueryResult;

use crate::context::Ctx;
use crate::db::DbConnection;
use crate::db::repo::{self, audit::NewAuditEvent};
use crate::domain::{AccountId, EventType, RequestId};
use crate::services::{ClientInfo, Failure};

/// Who acted.
#[derive(Debug, Clone)]
pub enum Actor<'a> {
    /// The account holder.
    Account(&'a AccountId),
    /// A support user.
    Support(&'a AccountId),
    /// The service itself (expiry, auto-approval).
    System,
    /// Someone not logged in (a failed login, a submission).
    Anonymous,
}

impl Actor<'_> {
    fn render(&self) -> String {
        match self {
            Self::Account(id) => format!("account:{id}"),
            Self::Support(id) => format!("support:{id}"),
            Self::System => "system".into(),
            Self::Anonymous => "anonymous".into(),
        }
    }
}

/// One event to record.
#[derive(Debug)]
pub struct Event<'a> {
    /// What happened.
    pub event_type: EventType,
    /// Who did it.
    pub actor: Actor<'a>,
    /// The account concerned.
    pub account_id: Option<&'a AccountId>,
    /// The recovery request concerned.
    pub request_id: Option<&'a RequestId>,
    /// From where.
    pub client: &'a ClientInfo,
    /// Details (never a secret).
    pub details: serde_json::Value,
}

/// Appends an event at `now`.
pub fn record(conn: &mut DbConnection, now: DateTime<Utc>, event: Event<'_>) -> QueryResult<()> {
    let actor = event.actor.render();
    let details = event.details.to_string();
    repo::audit::insert(
        conn,
        &NewAuditEvent {
            event_type: event.event_type.as_str(),
            actor: &actor,
            account_id: event.account_id.map(AccountId::as_str),
            request_id: event.request_id.map(RequestId::as_str),
            ip: event.client.ip.as_deref(),
            user_agent: event.client.user_agent.as_deref(),
            at: now,
            details: &details,
        },
    )
}

/// A recorded event, as read back.
#[derive(Debug, Clone)]
pub struct EventView {
    /// Sequence number.
    pub id: i64,
    /// Dotted type.
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
    /// Details.
    pub details: serde_json::Value,
}

/// A page of events matching `filter`, newest first, and the total.
pub fn list(
    conn: &mut DbConnection,
    filter: &repo::audit::AuditFilter,
    page: repo::Page,
) -> QueryResult<(Vec<EventView>, i64)> {
    let (rows, total) = repo::audit::list(conn, filter, page)?;
    let items = rows
        .into_iter()
        .map(|r| EventView {
            id: r.id,
            event_type: r.event_type,
            actor: r.actor,
            account_id: r.account_id,
            request_id: r.request_id,
            ip: r.ip,
            user_agent: r.user_agent,
            at: r.at,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok((items, total))
}

/// Filters of the audit-log query, as typed; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this account's events (its id).
    pub account_id: Option<String>,
    /// Only this recovery request's events (its id).
    pub request_id: Option<String>,
    /// Only this event type, e.g. `recovery_request.approved`.
    pub event_type: Option<String>,
}

/// A page of the audit log matching `filter`, newest first, and the total.
pub async fn events(
    ctx: &Ctx,
    filter: AuditFilter,
    page: repo::Page,
) -> Result<(Vec<EventView>, i64), Failure> {
    let filter = repo::audit::AuditFilter {
        account_id: filter.account_id,
        request_id: filter.request_id,
        event_type: filter.event_type,
    };
    // `ctx.db.run`, not `unit_of_work::read`: the unit of work records events through this
    // module, which therefore imports nothing of it.
    ctx.db
        .run(move |conn| list(conn, &filter, page).map_err(Failure::from))
        .await
}

impl<'a> Event<'a> {
    /// An event of `event_type` by `actor` from `client`, about nothing yet and without details.
    pub fn new(event_type: EventType, actor: Actor<'a>, client: &'a ClientInfo) -> Self {
        Self {
            event_type,
            actor,
            account_id: None,
            request_id: None,
            client,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// The account the event is about.
    pub fn account(mut self, account_id: Option<&'a AccountId>) -> Self {
        self.account_id = account_id;
        self
    }

    /// The recovery request the event is about.
    pub fn request(mut self, request_id: &'a RequestId) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// What else is worth keeping (never a secret).
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The details a recovery-request event may show the account's owner: states, where the link
/// goes and when it expires. Everything else in them is support-internal (the approval's
/// comment and justification, a denial's reason, notes, evidence such as ownership or
/// duplicates) or about the requester, who may not be the owner.
const OWNER_REQUEST_DETAILS: &[&str] = &[
    "from",
    "to",
    "deliver_to",
    "expires_at",
    "two_factor_removed",
];

/// `event` as the account's owner may see it (`GET /account/events`): a recovery-request
/// event keeps only [`OWNER_REQUEST_DETAILS`], and an action of support or of the service
/// itself loses the IP address and user agent it came from. The owner's own actions are shown
/// whole. Trimmed when read, so it also covers events recorded before this rule.
pub fn owner_view(mut event: EventView) -> EventView {
    if event.event_type.starts_with("recovery_request.") {
        event.details = match event.details {
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.into_iter()
                    .filter(|(key, _)| OWNER_REQUEST_DETAILS.contains(&key.as_str()))
                    .collect(),
            ),
            _ => serde_json::json!({}),
        };
    }
    if event.actor.starts_with("support:") || event.actor == "system" {
        event.ip = None;
        event.user_agent = None;
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, actor: &str, details: serde_json::Value) -> EventView {
        EventView {
            id: 1,
            event_type: event_type.into(),
            actor: actor.into(),
            account_id: Some("a".into()),
            request_id: None,
            ip: Some("198.51.100.7".into()),
            user_agent: Some("SupportConsole/1.0".into()),
            at: Utc::now(),
            details,
        }
    }

    #[test]
    fn the_owner_never_sees_support_text_or_where_support_worked_from() {
        let seen = owner_view(event(
            "recovery_request.approved",
            "support:s1",
            serde_json::json!({"from": "in_review", "deliver_to": "contact_email",
                "comment": "internal", "justification": "internal", "ownership": "unanswered"}),
        ));
        assert_eq!(
            seen.details,
            serde_json::json!({"from": "in_review", "deliver_to": "contact_email"})
        );
        assert_eq!((seen.ip, seen.user_agent), (None, None));
        let denied = owner_view(event(
            "recovery_request.denied",
            "support:s1",
            serde_json::json!({"from": "submitted", "reason": "internal"}),
        ));
        assert_eq!(denied.details, serde_json::json!({"from": "submitted"}));
    }

    #[test]
    fn the_owners_own_events_are_shown_whole() {
        let details = serde_json::json!({"session": "s", "second_factor": "totp"});
        let seen = owner_view(event(
            "session.login_succeeded",
            "account:a",
            details.clone(),
        ));
        assert_eq!(seen.details, details);
        assert_eq!(seen.ip.as_deref(), Some("198.51.100.7"));
    }
}

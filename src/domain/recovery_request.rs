//! Account-recovery requests: their statuses and the only moves between them (API.md).
//!
//! The transition table lives here and only here; every status change in the service goes
//! through [`RecoveryStatus::apply`].

use std::fmt;

use chrono::{DateTime, Utc};

use crate::domain::ids::{AccountId, DeviceId, MessageId, RequestId};

pub use crate::domain::limits::TEXT_MAX_CHARS;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecoveryStatus {
    /// Filed, not yet looked at.
    Submitted,
    /// Support is looking at it.
    InReview,
    /// Support asked the requester something.
    NeedsInfo,
    /// Support (or the system) approved it: a completion link is (or will be) sent.
    Approved,
    /// Support refused it. Final.
    Denied,
    /// The requester withdrew it. Final.
    Withdrawn,
    /// The owner set a new password with the completion link. Final.
    Completed,
    /// The completion link was not used in time.
    Expired,
    /// The requester did not answer support's question in time. Final.
    Abandoned,
}

/// Something that happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecoveryAction {
    /// Support adds an internal note.
    AddNote,
    /// Support sends a message to the requester.
    SendMessage,
    /// The requester replies.
    Reply,
    /// Support (or the system) approves.
    Approve,
    /// Support denies.
    Deny,
    /// The requester withdraws.
    Withdraw,
    /// The owner completes with the link.
    Complete,
    /// The completion link ran out.
    Expire,
    /// The account's owner says "it was not me" before completion.
    Dispute,
    /// The system closes a request whose requester did not answer in time.
    Abandon,
}

/// A move the table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be changed by {action:?}")]
pub struct InvalidTransition {
    /// The status it was in.
    pub from: RecoveryStatus,
    /// What was attempted.
    pub action: RecoveryAction,
}

impl RecoveryStatus {
    /// Every status.
    pub const ALL: [RecoveryStatus; 9] = [
        Self::Submitted,
        Self::InReview,
        Self::NeedsInfo,
        Self::Approved,
        Self::Denied,
        Self::Withdrawn,
        Self::Completed,
        Self::Expired,
        Self::Abandoned,
    ];

    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::InReview => "in_review",
            Self::NeedsInfo => "needs_info",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Withdrawn => "withdrawn",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Abandoned => "abandoned",
        }
    }

    /// Reads a stored or queried status.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The statuses of the review queue: requests waiting for support to decide, in the order
    /// they were filed. A request's place in the queue counts only these.
    pub const QUEUED: [Self; 2] = [Self::Submitted, Self::InReview];

    /// Completed, denied, withdrawn and abandoned requests never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Denied | Self::Withdrawn | Self::Abandoned
        )
    }

    /// Open requests still need someone: the requester's links work while a request is open.
    pub fn is_open(self) -> bool {
        !self.is_final()
    }

    /// The status after `action`, or the refusal. Notes never change a status except the
    /// first one on a submitted request; a message to a requester already asked stays
    /// `needs_info`; a reply outside `needs_info` is recorded without a move.
    pub fn apply(self, action: RecoveryAction) -> Result<Self, InvalidTransition> {
        use RecoveryAction as A;
        use RecoveryStatus as S;
        let next = match (self, action) {
            (S::Submitted, A::AddNote) => Some(S::InReview),
            (s, A::AddNote) => Some(s),
            (S::Submitted | S::InReview | S::NeedsInfo, A::SendMessage) => Some(S::NeedsInfo),
            (S::NeedsInfo, A::Reply) => Some(S::InReview),
            (S::Submitted | S::InReview, A::Reply) => Some(self),
            (S::Submitted | S::InReview | S::NeedsInfo | S::Expired, A::Approve) => {
                Some(S::Approved)
            }
            (S::Submitted | S::InReview | S::NeedsInfo, A::Deny) => Some(S::Denied),
            (S::Submitted | S::InReview | S::NeedsInfo | S::Approved, A::Withdraw) => {
                Some(S::Withdrawn)
            }
            (S::Approved, A::Complete) => Some(S::Completed),
            (S::Approved, A::Expire) => Some(S::Expired),
            (S::Approved, A::Dispute) => Some(S::InReview),
            (S::NeedsInfo, A::Abandon) => Some(S::Abandoned),
            _ => None,
        };
        next.ok_or(InvalidTransition { from: self, action })
    }

    /// What the requester can do now, in a sentence or two. `hints` fills in what depends on
    /// the request and the settings (when an unanswered question closes it, whether documents
    /// may be attached).
    pub fn next_step(self, hints: &NextStepHints) -> String {
        match self {
            Self::Submitted => "Your request was received and waits in the queue: this page shows \
                 your place and, when we can tell, when to expect a decision. If the account's \
                 email address still reaches you, answer the message we sent there: it speeds \
                 things up."
                .to_owned(),
            Self::InReview => "Support is reviewing your request. We will email you when \
                 something changes; this page shows every mail we sent you and whether it was \
                 delivered."
                .to_owned(),
            Self::NeedsInfo => {
                let mut text = String::from(
                    "Support needs more information from you: read their message below and \
                     reply here",
                );
                if hints.attachments {
                    text.push_str(", or attach a document they asked for (PDF, PNG or JPEG)");
                }
                text.push('.');
                match hints.closes_at {
                    Some(at) => text.push_str(&format!(
                        " Without an answer, the request is closed on {} UTC.",
                        at.format("%Y-%m-%d %H:%M")
                    )),
                    None => text.push_str(" A request left unanswered is closed after a while."),
                }
                text
            }
            Self::Approved => "Your request was approved. A link to set a new password is \
                 emailed to you (when ownership could not be confirmed, after a waiting period). \
                 It works once."
                .to_owned(),
            Self::Denied => "Your request was denied: support's reason is shown here. If you can \
                 give more evidence that the account is yours, you can file a new request at any \
                 time."
                .to_owned(),
            Self::Withdrawn => {
                "You withdrew this request. You can file a new request at any time.".to_owned()
            }
            Self::Completed => "Your account was recovered. Log in with your new password and \
                 set up two-factor authentication again."
                .to_owned(),
            Self::Expired => "The link to recover your account expired before it was used. \
                 Support may approve the request again, which emails you a new link; you can \
                 also file a new request at any time."
                .to_owned(),
            Self::Abandoned => "This request was closed because support's question went \
                 unanswered for too long. You can file a new request at any time."
                .to_owned(),
        }
    }
}

/// What a request's next step depends on beyond its status.
#[derive(Debug, Clone, Copy, Default)]
pub struct NextStepHints {
    /// When a request waiting for the requester's answer is closed (`needs_info` only).
    pub closes_at: Option<DateTime<Utc>>,
    /// Whether the requester may attach documents now.
    pub attachments: bool,
}

impl fmt::Display for RecoveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the account's owner confirmed the request through the account's email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No answer (or no verified email to ask).
    Unanswered,
    /// "It was me."
    Proven,
    /// "It was not me."
    Disputed,
}

impl Ownership {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unanswered => "unanswered",
            Self::Proven => "proven",
            Self::Disputed => "disputed",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Unanswered, Self::Proven, Self::Disputed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Where an approved request's completion link goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverTo {
    /// The account's verified email (the default).
    AccountEmail,
    /// The contact email of the request (support must justify it).
    ContactEmail,
}

impl DeliverTo {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountEmail => "account_email",
            Self::ContactEmail => "contact_email",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AccountEmail, Self::ContactEmail]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// Who wrote a message on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// The requester, through the tracking token.
    Requester,
    /// Support, to the requester (emailed).
    Support,
    /// Support's internal note, never shown to the requester.
    Note,
}

impl MessageKind {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Support => "support",
            Self::Note => "note",
        }
    }

    /// Reads a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Requester, Self::Support, Self::Note]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A stored recovery request, as the repository reads it back: typed ids, statuses and UTC
/// times. The token columns hold only hashes and sealed (encrypted) values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// Its id.
    pub id: RequestId,
    /// The username as submitted.
    pub username: String,
    /// The account it names, when one exists.
    pub account_id: Option<AccountId>,
    /// Where the requester reads mail.
    pub contact_email: String,
    /// The requester's account of what happened.
    pub reason: String,
    /// Where it stands.
    pub status: RecoveryStatus,
    /// SHA-256 of the tracking token.
    pub tracking_token_hash: String,
    /// The tracking token sealed with the data key (to mail the same link again).
    pub tracking_token_sealed: String,
    /// SHA-256 of the ownership link's token (sent to the account's verified email).
    pub ownership_token_hash: Option<String>,
    /// The ownership token sealed with the data key.
    pub ownership_token_sealed: Option<String>,
    /// The owner's answer.
    pub ownership: Ownership,
    /// When the owner answered.
    pub ownership_answered_at: Option<DateTime<Utc>>,
    /// The open request for the same account that was there first.
    pub duplicate_of: Option<RequestId>,
    /// When it was filed.
    pub submitted_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was approved or denied.
    pub decided_at: Option<DateTime<Utc>>,
    /// Who decided: `support:<id>` or `system`.
    pub decided_by: Option<String>,
    /// The approval comment or the denial reason.
    pub decision_note: Option<String>,
    /// Where the completion link goes, once approved.
    pub deliver_to: Option<DeliverTo>,
    /// Why support chose the contact email.
    pub deliver_justification: Option<String>,
    /// SHA-256 of the completion token.
    pub completion_token_hash: Option<String>,
    /// When the completion link is to be sent (after the waiting period, if any).
    pub link_due_at: Option<DateTime<Utc>>,
    /// When it was sent.
    pub link_sent_at: Option<DateTime<Utc>>,
    /// When it stops working.
    pub link_expires_at: Option<DateTime<Utc>>,
    /// When the owner completed the recovery.
    pub completed_at: Option<DateTime<Utc>>,
    /// Client IP at submission.
    pub submitted_ip: Option<String>,
    /// Client user agent at submission.
    pub submitted_user_agent: Option<String>,
    /// The device it came from, when the account knows it (its `X-Device-Token`).
    pub submitted_device_id: Option<DeviceId>,
    /// Four eyes: the support account that gave the first of two approvals.
    pub first_approval_by: Option<String>,
    /// When it did.
    pub first_approval_at: Option<DateTime<Utc>>,
    /// When support last asked the requester something (the request has waited since).
    pub needs_info_since: Option<DateTime<Utc>>,
    /// When the requester was reminded of the unanswered question.
    pub reminded_at: Option<DateTime<Utc>>,
}

/// A message or internal note on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryMessage {
    /// Its id.
    pub id: MessageId,
    /// The request.
    pub request_id: RequestId,
    /// Who wrote it.
    pub kind: MessageKind,
    /// The support user who wrote it.
    pub author_id: Option<AccountId>,
    /// The text.
    pub body: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::RecoveryAction as A;
    use super::RecoveryStatus as S;
    use super::*;

    const ACTIONS: [RecoveryAction; 10] = [
        A::AddNote,
        A::SendMessage,
        A::Reply,
        A::Approve,
        A::Deny,
        A::Withdraw,
        A::Complete,
        A::Expire,
        A::Dispute,
        A::Abandon,
    ];

    /// The moves of API.md's table (plus the status-keeping notes, messages and replies).
    fn allowed() -> Vec<(S, A, S)> {
        vec![
            (S::Submitted, A::AddNote, S::InReview),
            (S::InReview, A::AddNote, S::InReview),
            (S::NeedsInfo, A::AddNote, S::NeedsInfo),
            (S::Approved, A::AddNote, S::Approved),
            (S::Denied, A::AddNote, S::Denied),
            (S::Withdrawn, A::AddNote, S::Withdrawn),
            (S::Completed, A::AddNote, S::Completed),
            (S::Expired, A::AddNote, S::Expired),
            (S::Submitted, A::SendMessage, S::NeedsInfo),
            (S::InReview, A::SendMessage, S::NeedsInfo),
            (S::NeedsInfo, A::SendMessage, S::NeedsInfo),
            (S::NeedsInfo, A::Reply, S::InReview),
            (S::Submitted, A::Reply, S::Submitted),
            (S::InReview, A::Reply, S::InReview),
            (S::Submitted, A::Approve, S::Approved),
            (S::InReview, A::Approve, S::Approved),
            (S::NeedsInfo, A::Approve, S::Approved),
            (S::Expired, A::Approve, S::Approved),
            (S::Submitted, A::Deny, S::Denied),
            (S::InReview, A::Deny, S::Denied),
            (S::NeedsInfo, A::Deny, S::Denied),
            (S::Submitted, A::Withdraw, S::Withdrawn),
            (S::InReview, A::Withdraw, S::Withdrawn),
            (S::NeedsInfo, A::Withdraw, S::Withdrawn),
            (S::Approved, A::Withdraw, S::Withdrawn),
            (S::Approved, A::Complete, S::Completed),
            (S::Approved, A::Expire, S::Expired),
            (S::Approved, A::Dispute, S::InReview),
            (S::NeedsInfo, A::Abandon, S::Abandoned),
            (S::Abandoned, A::AddNote, S::Abandoned),
        ]
    }

    #[test]
    fn every_allowed_move_leads_where_the_table_says() {
        for (from, action, to) in allowed() {
            assert_eq!(from.apply(action), Ok(to), "{from} {action:?}");
        }
    }

    #[test]
    fn every_other_move_is_refused() {
        let allowed = allowed();
        for from in S::ALL {
            for action in ACTIONS {
                if allowed.iter().any(|(f, a, _)| *f == from && *a == action) {
                    continue;
                }
                assert_eq!(
                    from.apply(action),
                    Err(InvalidTransition { from, action }),
                    "{from} {action:?} must be refused"
                );
            }
        }
    }

    #[test]
    fn final_statuses_never_move_except_for_notes() {
        for from in [S::Completed, S::Denied, S::Withdrawn, S::Abandoned] {
            assert!(from.is_final());
            for action in ACTIONS {
                if let Ok(to) = from.apply(action) {
                    assert_eq!((action, to), (A::AddNote, from));
                }
            }
        }
    }

    #[test]
    fn a_question_says_when_it_closes_and_whether_documents_may_be_attached() {
        let closes_at = DateTime::parse_from_rfc3339("2026-12-31T09:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        let text = S::NeedsInfo.next_step(&NextStepHints {
            closes_at,
            attachments: true,
        });
        assert!(text.contains("2026-12-31 09:30 UTC"), "{text}");
        assert!(text.contains("attach"), "{text}");
        let plain = S::NeedsInfo.next_step(&NextStepHints::default());
        assert!(!plain.contains("attach"), "{plain}");
        // Every final or stuck status tells what the requester can still do.
        for s in [S::Denied, S::Expired, S::Abandoned, S::Withdrawn] {
            assert!(
                s.next_step(&NextStepHints::default())
                    .contains("new request"),
                "{s}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert!(!s.next_step(&NextStepHints::default()).is_empty());
        }
        for o in [
            Ownership::Unanswered,
            Ownership::Proven,
            Ownership::Disputed,
        ] {
            assert_eq!(Ownership::parse(o.as_str()), Some(o));
        }
        assert_eq!(Ownership::parse("maybe"), None);
        for d in [DeliverTo::AccountEmail, DeliverTo::ContactEmail] {
            assert_eq!(DeliverTo::parse(d.as_str()), Some(d));
        }
        assert_eq!(DeliverTo::parse("contact_email: because"), None);
        for k in [
            MessageKind::Requester,
            MessageKind::Support,
            MessageKind::Note,
        ] {
            assert_eq!(MessageKind::parse(k.as_str()), Some(k));
        }
    }
}

//! Background work on recovery requests, run by every instance's maintenance loop: the
//! optional auto-approval policy, held completion links that came due, links that expired
//! unused, and requests waiting for the requester's answer (one reminder, then `abandoned`).
//!
//! Several instances may run it at once: every change is a conditional UPDATE (on the status,
//! or on "no link sent yet"), so each step happens once whoever gets there first.

use super::completion::send_completion_link;
use super::support::{Approval, approve_in};
use super::{SupportError, closes_at, open_ttl, request_event, unseal};
use crate::context::Ctx;
use crate::db::repo::{self, recovery_requests::RequestChanges};
use crate::domain::{DeliverTo, EventType, RecoveryAction, RecoveryStatus};
use crate::mail::{OutgoingMail, human_time};
use crate::services::audit::Actor;
use crate::services::unit_of_work::{self, Work};
use crate::services::{ClientInfo, Failure};

/// Sends held completion links that came due, expires unused ones, applies the optional
/// auto-approval policy, reminds and closes unanswered requests, and erases personal data past
/// retention. Safe to run on several instances at once. Answers how many requests
/// it changed.
pub async fn run_due_work(ctx: &Ctx) -> Result<usize, Failure> {
    let changed = unit_of_work::write(ctx, |w| -> Result<usize, Failure> {
        Ok(auto_approve(w)?
            + send_due_links(w)?
            + expire_links(w)?
            + abandon_unanswered(w)?
            + remind_unanswered(w)?)
    })
    .await?;
    // Its own unit: a long erasure never holds up the status changes above.
    Ok(changed + super::retention::erase_due(ctx).await?)
}

/// With `RECOVERY_AUTO_APPROVE_AFTER` set, approves requests whose ownership the account's
/// email proved and that waited that long, in the owner's name (actor `system`).
fn auto_approve(w: &mut Work<'_>) -> Result<usize, Failure> {
    let Some(after) = w.ctx.config.recovery_auto_approve_after else {
        return Ok(0);
    };
    let before = w.now - open_ttl(after);
    let approval = Approval {
        comment: Some("approved by policy: ownership proven by the account's email".into()),
        deliver_to: DeliverTo::AccountEmail,
        justification: None,
    };
    let client = ClientInfo::default();
    let mut done = 0;
    for request in repo::recovery_requests::auto_approvable(w.conn, before)? {
        match approve_in(w, &request, &approval, Actor::System, &client) {
            Ok(true) => done += 1,
            // A support account's request: left for two support accounts.
            Ok(false) => {}
            Err(SupportError::Failure(f)) => return Err(f),
            // Not approvable (any more): left for support.
            Err(_) => {}
        }
    }
    Ok(done)
}

/// Mails the completion links whose waiting period ended.
fn send_due_links(w: &mut Work<'_>) -> Result<usize, Failure> {
    let mut done = 0;
    for request in repo::recovery_requests::links_due(w.conn, w.now)? {
        if send_completion_link(w, &request.id)? {
            done += 1;
        }
    }
    Ok(done)
}

/// Moves approved requests whose link ran out to `expired` (support may approve them again).
fn expire_links(w: &mut Work<'_>) -> Result<usize, Failure> {
    let mut done = 0;
    let client = ClientInfo::default();
    for request in repo::recovery_requests::links_expired(w.conn, w.now)? {
        let Ok(to) = request.status.apply(RecoveryAction::Expire) else {
            continue;
        };
        let changes = RequestChanges {
            status: Some(to),
            completion_token_hash: Some(None),
            ..Default::default()
        };
        // Another instance may have expired it first: then there is nothing to record.
        if !repo::recovery_requests::update(w.conn, &request.id, request.status, w.now, changes)? {
            continue;
        }
        w.audit(request_event(
            &request,
            EventType::RecoveryRequestExpired,
            Actor::System,
            &client,
        ))?;
        done += 1;
    }
    Ok(done)
}

/// Reminds, once, the requesters who left support's question unanswered for
/// `RECOVERY_NEEDS_INFO_REMINDER_AFTER`.
fn remind_unanswered(w: &mut Work<'_>) -> Result<usize, Failure> {
    let before = w.now - open_ttl(w.ctx.config.recovery_needs_info_reminder_after);
    let client = ClientInfo::default();
    let mut done = 0;
    for request in repo::recovery_requests::to_remind(w.conn, before)? {
        let (Some(since), Some(closes)) =
            (request.needs_info_since, closes_at(&w.ctx.config, &request))
        else {
            continue;
        };
        // Another instance may have reminded it first, or the requester answered meanwhile.
        if !repo::recovery_requests::claim_reminder(w.conn, &request.id, since, w.now)? {
            continue;
        }
        let token = unseal(w.ctx, &request.tracking_token_sealed)?;
        let link = w.ctx.mailer.link(
            "recovery/status",
            &[("id", request.id.as_str()), ("token", &token)],
        );
        w.mail_about(
            &request.id,
            OutgoingMail {
                to: request.contact_email.clone(),
                template: "recovery_reminder",
                context: serde_json::json!({
                    "username": request.username,
                    "link": link,
                    "closes": human_time(closes),
                }),
                carries_token: true,
            },
        )?;
        w.audit(request_event(
            &request,
            EventType::RecoveryRequestReminderSent,
            Actor::System,
            &client,
        ))?;
        done += 1;
    }
    Ok(done)
}

/// Closes as `abandoned` the requests whose requester left support's question unanswered for
/// `RECOVERY_NEEDS_INFO_CLOSE_AFTER`, and tells the requester they may file a new one.
fn abandon_unanswered(w: &mut Work<'_>) -> Result<usize, Failure> {
    let before = w.now - open_ttl(w.ctx.config.recovery_needs_info_close_after);
    let client = ClientInfo::default();
    let mut done = 0;
    for request in repo::recovery_requests::unanswered_since(w.conn, before)? {
        let (Some(since), Ok(to)) = (
            request.needs_info_since,
            request.status.apply(RecoveryAction::Abandon),
        ) else {
            continue;
        };
        debug_assert_eq!(to, RecoveryStatus::Abandoned);
        if !repo::recovery_requests::abandon(w.conn, &request.id, since, w.now)? {
            continue;
        }
        w.mail_about(
            &request.id,
            OutgoingMail {
                to: request.contact_email.clone(),
                template: "recovery_abandoned",
                context: serde_json::json!({"username": request.username}),
                carries_token: false,
            },
        )?;
        w.audit(
            request_event(
                &request,
                EventType::RecoveryRequestAbandoned,
                Actor::System,
                &client,
            )
            .details(serde_json::json!({"from": request.status.as_str(), "to": to.as_str()})),
        )?;
        done += 1;
    }
    Ok(done)
}

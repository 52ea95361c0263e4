//! Retention: `RECOVERY_DATA_RETENTION` after a request reached a final status, its personal
//! data goes (API.md): the contact email, reason, decision texts, IP and user agent on the
//! request; its messages and notes; the mails about it (addresses and bodies); the free text
//! and client traces of its audit events. The id, username, statuses, times and event types
//! stay, so the request still answers its tracking link with its status. Mails about nothing
//! in particular go the same period after they were delivered or given up.
//!
//! Work is claimed in small batches (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite's write
//! transactions run one at a time) and each erasure is a conditional UPDATE on "not erased
//! yet", so several instances share the work and none does it twice.

use super::open_ttl;
use crate::context::Ctx;
use crate::db::repo;
use crate::domain::EventType;
use crate::services::audit::{Actor, Event};
use crate::services::unit_of_work;
use crate::services::{ClientInfo, Failure};

/// Requests erased per unit of work.
const BATCH: i64 = 50;

/// Erases one batch of requests past retention, and one batch of old delivered or failed
/// mails; answers how many rows it erased or removed.
pub async fn erase_due(ctx: &Ctx) -> Result<usize, Failure> {
    unit_of_work::write(ctx, |w| -> Result<usize, Failure> {
        let cutoff = w.now - open_ttl(w.ctx.config.recovery_data_retention);
        let client = ClientInfo::default();
        let mut done = 0;
        for id in repo::recovery_requests::due_for_erasure(w.conn, cutoff, BATCH)? {
            if !repo::recovery_requests::erase_personal_data(w.conn, &id, cutoff)? {
                continue;
            }
            repo::outbox::delete_finished_for_request(w.conn, id.as_str())?;
            repo::audit::strip_request_events(w.conn, id.as_str())?;
            w.audit(
                Event::new(EventType::RecoveryRequestErased, Actor::System, &client).request(&id),
            )?;
            done += 1;
        }
        done += repo::outbox::delete_finished_before(w.conn, cutoff, BATCH)?;
        Ok(done)
    })
    .await
}

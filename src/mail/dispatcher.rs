//! Delivers the outbox: claims due mails (one instance at a time per mail, with a lease),
//! sends them, records the outcome. A mail the server refuses for good (SMTP 5xx) is marked
//! failed at once; temporary failures (4xx, connection errors) are retried with exponential
//! back-off until `OUTBOX_MAX_ATTEMPTS` or `OUTBOX_MAX_AGE`, then marked failed. Failed mails
//! are kept (with the server's last answer) until retention removes them. It runs beside the
//! HTTP server and never blocks a request.
//!
//! Claims are small and short: [`BATCH`] mails at a time, leased for [`LEASE`] and renewed
//! while the batch is being sent, so a dispatcher that dies leaves its mails to another
//! instance within seconds. When a database call of the batch fails, the batch's claims are
//! given back at once (when the database still answers that much).
//!
//! Outcomes are recorded together: the batch's deliveries and failures go to the database in
//! one write when the batch is done, or sooner once [`RECORD_EVERY`] has passed since the
//! first outcome not yet recorded. A backlog so costs the database one claim and one record
//! per batch instead of a write per mail, and the writes of requests are not held up behind it.
//!
//! Delivery is at least once: if the process dies after the SMTP server accepted a mail but
//! before it was marked sent, the lease runs out and the mail is sent again, with the same
//! `Message-ID` (at most a batch's worth, sent within [`RECORD_EVERY`] of the crash).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::QueryResult;
use lettre::message::Mailbox;
use tokio::sync::{Notify, watch};

use crate::clock::SharedClock;
use crate::db::repo::{self, outbox::OutboxRow};
use crate::db::{Db, DbConnection, DbError};
use crate::mail::Mailer;
use crate::mail::transport::{Envelope, SendError, Transport};
use crate::metrics::Metrics;

/// How long a claim holds before another instance may take the mail (app time); renewed
/// every [`RENEW_EVERY`] while the batch is in hand.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often the claims of a batch being sent are renewed.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Mails claimed per round: few, so a dispatcher caught by a fault strands few (and only for
/// a lease).
pub const BATCH: i64 = 16;
/// The longest a delivery waits to be recorded while the rest of its batch is sent.
pub const RECORD_EVERY: Duration = Duration::from_secs(1);
/// How often to look for due mails when nobody wakes the dispatcher.
const POLL: Duration = Duration::from_millis(500);
/// The longest wait between attempts.
const MAX_BACKOFF_SECS: i64 = 3600;

/// What the dispatcher needs.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// Database.
    pub db: Db,
    /// Clock (backoff and leases are in app time).
    pub clock: SharedClock,
    /// Where mail goes.
    pub transport: Transport,
    /// The sender.
    pub from: Mailbox,
    /// Opens sealed bodies.
    pub mailer: Mailer,
    /// Counts mails sent and failed.
    pub metrics: Metrics,
    /// When a mail that keeps failing is given up.
    pub give_up: GiveUp,
}

/// When a mail that keeps failing temporarily is given up (`OUTBOX_MAX_ATTEMPTS`,
/// `OUTBOX_MAX_AGE`).
#[derive(Debug, Clone, Copy)]
pub struct GiveUp {
    /// Attempts in all.
    pub max_attempts: u32,
    /// Age since it was queued.
    pub max_age: Duration,
}

impl GiveUp {
    /// Whether a mail queued at `created_at` that has now failed `attempts` times (this one
    /// included) with `error` is given up.
    pub fn applies(
        &self,
        error: &SendError,
        attempts: i32,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let too_old = chrono::Duration::from_std(self.max_age)
            .map(|age| now - created_at >= age)
            .unwrap_or(false);
        matches!(error, SendError::Refused(_))
            || i64::from(attempts) >= i64::from(self.max_attempts)
            || too_old
    }
}

/// The wait before attempt `attempts + 1`: 30 s, 1 min, 2 min, … capped at an hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exp = attempts.clamp(0, 20) as u32;
    let secs = 30_i64.saturating_mul(1_i64 << exp).min(MAX_BACKOFF_SECS);
    chrono::Duration::seconds(secs)
}

impl Dispatcher {
    /// Runs until `stop` turns true; finishes the mail in hand first and gives back the claims
    /// on the rest of its batch, so that another instance sends them without waiting for the
    /// lease to run out.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let worker = format!("dispatcher-{}", uuid::Uuid::new_v4().simple());
        let wake: Arc<Notify> = self.mailer.wake_handle();
        tracing::info!(worker = %worker, "mail dispatcher started");
        loop {
            if *stop.borrow() {
                break;
            }
            let handled = match self.round(&worker, &stop).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "mail dispatcher could not read the outbox");
                    0
                }
            };
            if handled == 0 {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        tracing::info!(worker = %worker, "mail dispatcher stopped");
    }

    /// Claims and sends one batch; returns how many mails it handled.
    pub async fn round(
        &self,
        worker: &str,
        stop: &watch::Receiver<bool>,
    ) -> Result<usize, DbError> {
        let now = self.clock.now();
        let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let owned = worker.to_owned();
        let batch: Vec<OutboxRow> = self
            .db
            .write(move |conn| {
                repo::outbox::claim_due(
                    conn,
                    &owned,
                    repo::naive(now),
                    repo::naive(lease_until),
                    BATCH,
                )
                .map_err(DbError::from)
            })
            .await?;
        let claimed = batch.len();
        let mut handled = 0;
        let mut outcomes = Vec::with_capacity(claimed);
        let mut first_unrecorded: Option<Instant> = None;
        for row in batch {
            if *stop.borrow() {
                break;
            }
            match self.deliver_renewing(worker, row).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(e) => return Err(self.give_back(worker, outcomes, e).await),
            }
            handled += 1;
            let since = *first_unrecorded.get_or_insert_with(Instant::now);
            if since.elapsed() >= RECORD_EVERY {
                if let Err(e) = self
                    .record(worker, std::mem::take(&mut outcomes), false)
                    .await
                {
                    return Err(self.give_back(worker, Vec::new(), e).await);
                }
                first_unrecorded = None;
            }
        }
        let release = handled < claimed;
        let released = self.record(worker, outcomes, release).await?;
        if release {
            tracing::info!(
                released,
                "mail dispatcher stopping: unsent claims given back"
            );
        }
        Ok(handled)
    }

    /// After a database call of the batch failed with `error`: records what was delivered and
    /// gives the rest of the batch back now, not when the lease runs out (if the database
    /// answers that much; otherwise the short lease frees it). Answers `error`.
    async fn give_back(&self, worker: &str, outcomes: Vec<Outcome>, error: DbError) -> DbError {
        let released = self.record(worker, outcomes, true).await;
        tracing::warn!(
            released = released.as_ref().ok(),
            "mail dispatcher: a database call failed mid-batch; claims given back"
        );
        error
    }

    /// Records `outcomes` in one write and, with `release`, gives back the worker's claims on
    /// the mails it has not sent; returns how many claims it gave back.
    async fn record(
        &self,
        worker: &str,
        outcomes: Vec<Outcome>,
        release: bool,
    ) -> Result<usize, DbError> {
        if outcomes.is_empty() && !release {
            return Ok(0);
        }
        let worker = worker.to_owned();
        let now = repo::naive(self.clock.now());
        self.db
            .write_one(move |conn| {
                record_outcomes(conn, &worker, outcomes, now, release).map_err(DbError::from)
            })
            .await
    }

    /// Delivers one mail while renewing the lease on what the batch still holds.
    async fn deliver_renewing(&self, worker: &str, row: OutboxRow) -> Result<Outcome, DbError> {
        let delivery = self.deliver(row);
        tokio::pin!(delivery);
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the claim was just made.
        renew.tick().await;
        loop {
            tokio::select! {
                done = &mut delivery => return Ok(done),
                _ = renew.tick() => self.renew(worker).await?,
            }
        }
    }

    /// Extends the lease on every mail this worker holds.
    async fn renew(&self, worker: &str) -> Result<(), DbError> {
        let until = self.clock.now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let owned = worker.to_owned();
        self.db
            .write_one(move |conn| {
                repo::outbox::renew_claims(conn, &owned, repo::naive(until)).map_err(DbError::from)
            })
            .await
            .map(|_| ())
    }

    /// Sends one mail; what became of it is recorded with the rest of the batch.
    async fn deliver(&self, row: OutboxRow) -> Outcome {
        let opened = if row.sealed == 1 {
            self.mailer
                .cipher()
                .open(&row.body_text)
                .and_then(|t| self.mailer.cipher().open(&row.body_html).map(|h| (t, h)))
        } else {
            Ok((row.body_text.clone(), row.body_html.clone()))
        };
        let outcome = match &opened {
            Ok((text, html)) => {
                self.transport
                    .send(
                        &self.from,
                        &Envelope {
                            message_id: &row.message_id,
                            to: &row.recipient,
                            subject: &row.subject,
                            text,
                            html,
                        },
                    )
                    .await
            }
            Err(e) => Err(SendError::Permanent(e.to_string())),
        };
        let now = self.clock.now();
        match outcome {
            Ok(()) => {
                tracing::info!(outbox.id = %row.id, mail.kind = %row.kind, "mail delivered");
                self.metrics.mail_sent(&row.kind);
                Outcome::Sent { id: row.id }
            }
            Err(e) => {
                let next_attempt_at = retry_at(now, row.attempts, &e);
                let attempts = row.attempts.saturating_add(1);
                let given_up_at = self
                    .give_up
                    .applies(&e, attempts, repo::utc(row.created_at), now)
                    .then_some(now);
                self.metrics.mail_failed(&row.kind);
                tracing::warn!(
                    outbox.id = %row.id,
                    mail.kind = %row.kind,
                    attempts,
                    given_up = given_up_at.is_some(),
                    error = %e,
                    "mail delivery failed"
                );
                Outcome::Failed {
                    id: row.id,
                    // The server's answer, for support; bounded (it is the remote's text).
                    error: e.to_string().chars().take(500).collect(),
                    next_attempt_at,
                    given_up_at,
                }
            }
        }
    }
}

/// What became of one mail of a batch, until it is recorded.
#[derive(Debug)]
enum Outcome {
    /// The mail server took it.
    Sent {
        /// The outbox row.
        id: String,
    },
    /// It failed: tried again at `next_attempt_at`, or never again (`given_up_at`).
    Failed {
        /// The outbox row.
        id: String,
        /// The server's answer, bounded.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
        /// When it was given up, if it was.
        given_up_at: Option<DateTime<Utc>>,
    },
}

/// Marks the batch's sent mails sent (one statement), its failed ones failed, and with
/// `release` gives back the claims on the rest; returns how many it gave back.
fn record_outcomes(
    conn: &mut DbConnection,
    worker: &str,
    outcomes: Vec<Outcome>,
    now: NaiveDateTime,
    release: bool,
) -> QueryResult<usize> {
    let mut sent = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        match outcome {
            Outcome::Sent { id } => sent.push(id),
            Outcome::Failed {
                id,
                error,
                next_attempt_at,
                given_up_at,
            } => {
                repo::outbox::mark_failed(
                    conn,
                    &id,
                    worker,
                    &error,
                    repo::naive(next_attempt_at),
                    given_up_at.map(repo::naive),
                )?;
            }
        }
    }
    repo::outbox::mark_sent(conn, &sent, worker, now)?;
    if release {
        repo::outbox::release_claims(conn, worker)
    } else {
        Ok(0)
    }
}

fn retry_at(now: DateTime<Utc>, attempts: i32, error: &SendError) -> DateTime<Utc> {
    match error {
        // Kept for operators, tried again only daily: a bad address does not fix itself.
        SendError::Permanent(_) | SendError::Refused(_) => now + chrono::Duration::hours(24),
        SendError::Transient(_) => now + backoff(attempts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_gives_up_at_once_and_temporary_failures_at_the_limits() {
        let give_up = GiveUp {
            max_attempts: 3,
            max_age: Duration::from_secs(3600),
        };
        let t0 = Utc::now();
        let refused = SendError::Refused("permanent error (550): no such user".into());
        let later = SendError::Transient("transient error (451): try later".into());
        assert!(give_up.applies(&refused, 1, t0, t0));
        assert!(!give_up.applies(&later, 1, t0, t0));
        assert!(!give_up.applies(&later, 2, t0, t0 + chrono::Duration::minutes(59)));
        assert!(give_up.applies(&later, 3, t0, t0));
        assert!(give_up.applies(&later, 1, t0, t0 + chrono::Duration::minutes(60)));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0).num_seconds(), 30);
        assert_eq!(backoff(1).num_seconds(), 60);
        assert_eq!(backoff(3).num_seconds(), 240);
        assert_eq!(backoff(30).num_seconds(), 3600);
    }
}

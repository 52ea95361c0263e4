//! One unit of work: a write transaction that collects the audit events and outbox mails of a
//! use case and wakes the mail dispatcher once it has committed.
//!
//! A service writes its business steps inside [`write`]; the closure gets a [`Work`] with the
//! connection, the time the unit started (one `now` for every row it writes), and helpers for
//! the two side effects every state change has: an audit event and a mail. Nothing here decides
//! a rule.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::context::Ctx;
use crate::db::{DbConnection, DbError};
use crate::mail::OutgoingMail;
use crate::services::Failure;
use crate::services::audit::{self, Event};

/// The inside of a write transaction.
pub struct Work<'c> {
    /// The connection, inside the transaction.
    pub conn: &'c mut DbConnection,
    /// When the unit started: every row it writes carries this time.
    pub now: DateTime<Utc>,
    /// The app's state (configuration, mailer, cipher, …).
    pub ctx: &'c Ctx,
    mailed: bool,
}

impl std::fmt::Debug for Work<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work").field("now", &self.now).finish()
    }
}

impl Work<'_> {
    /// Renders `mail` into the outbox; the dispatcher is woken after the commit.
    pub fn mail<C: Serialize>(&mut self, mail: OutgoingMail<C>) -> Result<(), Failure> {
        self.ctx.mailer.queue(self.conn, self.now, mail)?;
        self.mailed = true;
        Ok(())
    }

    /// Like [`Work::mail`], for a mail about recovery request `request_id`: the request's
    /// status and evidence list it with its delivery state.
    pub fn mail_about<C: Serialize>(
        &mut self,
        request_id: &crate::domain::RequestId,
        mail: OutgoingMail<C>,
    ) -> Result<(), Failure> {
        self.ctx
            .mailer
            .queue_about(self.conn, self.now, Some(request_id.as_str()), mail)?;
        self.mailed = true;
        Ok(())
    }

    /// Appends `event` to the audit log at the unit's time.
    pub fn audit(&mut self, event: Event<'_>) -> Result<(), Failure> {
        audit::record(self.conn, self.now, event)?;
        Ok(())
    }
}

/// Runs `f` as one write transaction off the async workers (queued to SQLite's writer thread, then
/// `BEGIN IMMEDIATE`: [`crate::db::Db::write`]), commits when it returns `Ok`, and then wakes
/// the mail dispatcher if it queued mail.
pub async fn write<T, E, F>(ctx: &Ctx, f: F) -> Result<T, E>
where
    F: for<'c> FnOnce(&mut Work<'c>) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + From<diesel::result::Error> + Send + 'static,
{
    let now = ctx.clock.now();
    let inner = ctx.clone();
    let (value, mailed) = ctx
        .db
        .write(move |conn| {
            let mut work = Work {
                conn,
                now,
                ctx: &inner,
                mailed: false,
            };
            let value = f(&mut work)?;
            Ok::<(T, bool), E>((value, work.mailed))
        })
        .await?;
    if mailed {
        ctx.mailer.wake();
    }
    Ok(value)
}

/// Runs `f`, which only reads, with a pooled connection outside any write transaction (on
/// SQLite on the calling worker when a connection is idle, in one snapshot:
/// [`crate::db::Db::read`]). A single statement that writes goes through [`write`] instead, so
/// that it queues for SQLite's lock.
pub async fn read<T, E, F>(ctx: &Ctx, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    ctx.db.read(f).await
}

/// [`read`] for `f` that runs exactly one statement, which is its own snapshot: on SQLite it
/// skips the transaction around it ([`crate::db::Db::read_one`]). For the hottest reads
/// (authenticating every call, `GET /account`).
pub async fn read_one<T, E, F>(ctx: &Ctx, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    ctx.db.read_one(f).await
}

//! The `password_reset_jobs` table: a password-reset request recorded in the request's own
//! transaction (known login or not), taken by exactly one worker, which deletes it in the
//! transaction that issues its token and mail. `FOR UPDATE SKIP LOCKED` on PostgreSQL lets
//! several instances work at once; SQLite's IMMEDIATE transaction excludes other writers.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use crate::db::repo::{naive, utc};
use crate::db::schema::password_reset_jobs;
use crate::db::{DbConnection, RunTyped, on_backend};
use crate::domain::AccountId;

/// A recorded reset request, as the table has it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = password_reset_jobs)]
struct JobRow {
    id: String,
    step: String,
    account_id: Option<String>,
    email_key: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    requested_at: NaiveDateTime,
}

impl JobRow {
    fn into_job(self) -> ResetJob {
        ResetJob {
            id: self.id,
            step: self.step,
            account_id: self.account_id.map(AccountId::from_stored),
            email_key: self.email_key,
            ip: self.ip,
            user_agent: self.user_agent,
            requested_at: utc(self.requested_at),
        }
    }
}

/// A recorded reset request.
#[derive(Debug, Clone)]
pub struct ResetJob {
    /// Id (UUID).
    pub id: String,
    /// What to do: `link`, `unverified`, `rehearse` or `nothing`.
    pub step: String,
    /// The account the login matched, if any.
    pub account_id: Option<AccountId>,
    /// A keyed hash of the address the request was decided on (or of the unknown login).
    pub email_key: Option<String>,
    /// The requester's IP, for the mail.
    pub ip: Option<String>,
    /// The requester's user agent, for the mail.
    pub user_agent: Option<String>,
    /// When it was asked for.
    pub requested_at: DateTime<Utc>,
}

/// Records a job (inside the request's transaction).
pub fn insert(conn: &mut DbConnection, job: &ResetJob) -> QueryResult<()> {
    on_backend!(conn, |conn| {
        diesel::insert_into(password_reset_jobs::table)
            .values(JobRow {
                id: job.id.clone(),
                step: job.step.clone(),
                account_id: job.account_id.as_ref().map(|a| a.as_str().to_owned()),
                email_key: job.email_key.clone(),
                ip: job.ip.clone(),
                user_agent: job.user_agent.clone(),
                requested_at: naive(job.requested_at),
            })
            .execute(conn)
            .map(|_| ())
    })
}

/// Takes up to `limit` of the oldest jobs: selects them (skipping rows another transaction
/// holds, on PostgreSQL) and deletes them. Run it inside a write transaction; the jobs are
/// gone only if that commits. Should fewer rows be deleted than were selected (another worker
/// took one first), the transaction is rolled back rather than lose that job.
pub fn take_oldest(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<ResetJob>> {
    let oldest = || {
        password_reset_jobs::table
            .order(password_reset_jobs::requested_at.asc())
            .limit(limit)
    };
    let jobs: Vec<JobRow> = match conn {
        // Several instances: skip the jobs another transaction is carrying out right now.
        DbConnection::Pg(pg) => oldest()
            .select(JobRow::as_select())
            .for_update()
            .skip_locked()
            .load(pg)?,
        // SQLite: the IMMEDIATE transaction already excludes every other writer.
        DbConnection::Sqlite(lite) => oldest().select(JobRow::as_select()).load(lite)?,
    };
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let deleted =
        diesel::delete(password_reset_jobs::table.filter(password_reset_jobs::id.eq_any(&ids)))
            .execute_typed(conn)?;
    if deleted != jobs.len() {
        return Err(diesel::result::Error::RollbackTransaction);
    }
    Ok(jobs.into_iter().map(JobRow::into_job).collect())
}

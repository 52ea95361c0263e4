//! The `password_reset_jobs` table: a password-reset request recorded in the request's own
//! transaction (known login or not), taken by exactly one worker, which deletes it in the
//! transaction that issues its token and mail. `FOR UPDATE SKIP LOCKED` on PostgreSQL lets
//! several instances work at once; SQLite's IMMEDIATE transaction excludes other writers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::password_reset_jobs;

/// A recorded reset request.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = password_reset_jobs)]
pub struct PasswordResetJobRow {
    /// Id (UUID).
    pub id: String,
    /// What to do: `link`, `unverified`, `rehearse` or `nothing`.
    pub step: String,
    /// The account the login matched, if any.
    pub account_id: Option<String>,
    /// A keyed hash of the address the request was decided on (or of the unknown login).
    pub email_key: Option<String>,
    /// The requester's IP, for the mail.
    pub ip: Option<String>,
    /// The requester's user agent, for the mail.
    pub user_agent: Option<String>,
    /// When it was asked for.
    pub requested_at: NaiveDateTime,
}

/// Records a job (inside the request's transaction).
pub fn insert(conn: &mut DbConnection, row: &PasswordResetJobRow) -> QueryResult<()> {
    diesel::insert_into(password_reset_jobs::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// What [`take_next`] found.
#[derive(Debug)]
pub enum Taken {
    /// The oldest job, now deleted in the caller's transaction: it is the caller's alone.
    Job(PasswordResetJobRow),
    /// Another worker took the job first.
    Lost,
    /// No job waits.
    Empty,
}

/// Takes the oldest job: selects it (skipping rows another transaction holds, on PostgreSQL)
/// and deletes it. Run it inside a write transaction; the job is gone only if that commits.
pub fn take_next(conn: &mut DbConnection) -> QueryResult<Taken> {
    let oldest = || {
        password_reset_jobs::table
            .order(password_reset_jobs::requested_at.asc())
            .limit(1)
    };
    let job: Option<PasswordResetJobRow> = match conn {
        // Several instances: skip the job another transaction is carrying out right now.
        DbConnection::Pg(pg) => oldest()
            .select(PasswordResetJobRow::as_select())
            .for_update()
            .skip_locked()
            .load(pg)?
            .pop(),
        // SQLite: the IMMEDIATE transaction already excludes every other writer.
        DbConnection::Sqlite(lite) => oldest()
            .select(PasswordResetJobRow::as_select())
            .load(lite)?
            .pop(),
    };
    let Some(job) = job else {
        return Ok(Taken::Empty);
    };
    let deleted =
        diesel::delete(password_reset_jobs::table.filter(password_reset_jobs::id.eq(&job.id)))
            .execute(conn)?;
    Ok(if deleted == 1 {
        Taken::Job(job)
    } else {
        Taken::Lost
    })
}

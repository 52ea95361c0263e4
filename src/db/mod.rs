//! The data layer: one Diesel code path over SQLite and PostgreSQL.
//!
//! [`DbConnection`] is a `MultiConnection` enum, pooled by r2d2 through [`DbManager`], which
//! picks the backend from the URL and keeps the real connection error. Every query runs off the
//! async workers through [`Db::run`] or [`Db::read`]; every write through [`Db::write`], which
//! queues SQLite's writes to one writer thread that commits what is waiting together
//! ([`writer`]) and runs PostgreSQL's in [`write_transaction`]. Hot queries run on the inner
//! connection, typed for its backend ([`RunTyped`], `on_backend!`). SQL lives here and nowhere
//! else.

pub mod repo;
pub mod schema;
mod typed;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::result::DatabaseErrorKind;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{Config, DatabaseUrl};

pub(crate) use typed::on_backend;
pub use typed::{Fixed, RunTyped, fixed};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to either backend. `Pg` comes first: see STACK.md.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Pg(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

impl DbConnection {
    /// True on SQLite, for the few statements that differ.
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// A pooled connection with a flag set when the server dropped it, so the pool discards it.
pub struct PoolSlot {
    conn: DbConnection,
    broken: bool,
}

/// Why a database call failed, as the API needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had in time, or the server went away: a 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other failure: a 500.
    #[error("database error: {0}")]
    Query(diesel::result::Error),
}

impl From<diesel::result::Error> for DbError {
    /// Classifies once: a lost connection is an outage (503), anything else a fault (500).
    fn from(e: diesel::result::Error) -> Self {
        if is_connection_error(&e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Query(e)
        }
    }
}

fn is_connection_error(e: &diesel::result::Error) -> bool {
    match e {
        diesel::result::Error::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => true,
            // PostgreSQL in recovery or set read-only: writes cannot commit until it is not.
            DatabaseErrorKind::ReadOnlyTransaction => true,
            DatabaseErrorKind::Unknown => {
                let m = info.message();
                // SQLite: the file vanished or became unreadable under us.
                m.contains("unable to open database")
                    || m.contains("disk I/O error")
                    || m.contains("file is not a database")
                    || m.contains("no such table: __diesel_schema_migrations")
                    || is_storage_error(m)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Storage that cannot take writes now, which passes when space returns or the database is
/// writable again: an outage (503), not a fault. SQLite says SQLITE_FULL ("database or disk
/// is full") or SQLITE_READONLY ("attempt to write a readonly database"); PostgreSQL says
/// "could not extend file …: No space left on device" (SQLSTATE 53100, `disk_full`) or
/// "could not write …" with the same cause, and "cannot execute … in a read-only transaction".
fn is_storage_error(message: &str) -> bool {
    const SIGNS: [&str; 7] = [
        "database or disk is full",
        "readonly database",
        "No space left on device",
        "could not extend file",
        "disk full",
        "Disk quota exceeded",
        "read-only transaction",
    ];
    SIGNS.iter().any(|s| message.contains(s))
}

/// Opens connections for r2d2, choosing the backend from the configured URL and applying the
/// SQLite settings to every new connection.
#[derive(Debug, Clone)]
pub struct DbManager {
    url: DatabaseUrl,
}

/// What every SQLite connection is set to, in this order.
///
/// - `busy_timeout` first: parallel connects otherwise fail on the switch to WAL.
/// - `journal_mode = WAL`, `synchronous = NORMAL`: readers do not block the writer, and a
///   commit writes the log without waiting for the disk; the checkpoints sync it.
/// - `foreign_keys = ON`: the schema's references hold.
/// - `temp_store = MEMORY`: the writer thread runs each write of a group in a savepoint
///   ([`writer`]), and SQLite keeps the pages a savepoint may have to restore in a statement
///   journal, which past 64 KiB it spilled to a temporary file: 7.6 % of the writer's time
///   in a burst of password resets went to writing that file (perf, docs/benchmarks.md).
///   In memory it is a few hundred KiB at most, freed at the group's commit.
/// - `wal_autocheckpoint = 0`: no commit copies the log back into the database; the writer's
///   checkpointer thread does, beside the writer ([`writer::spawn_with`]). Left to the commit
///   that passes the threshold, that copy and its two `fsync`s ran on the writer thread, and
///   every queued write waited for them: at 4,000 pages, eight checkpoints a second of about
///   33 ms each in a burst of password resets. (At SQLite's default of 1,000 pages it was
///   15 % of the writer's time.)
const SQLITE_SETTINGS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
     PRAGMA wal_autocheckpoint = 0;";

fn sqlite_uri(path: &std::path::Path) -> String {
    // `mode=rw`: a database file that vanished is an outage, not a fresh empty database.
    format!("file:{}?mode=rw", path.display())
}

impl ManageConnection for DbManager {
    type Connection = PoolSlot;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<PoolSlot, r2d2::Error> {
        let conn = match &self.url {
            DatabaseUrl::Postgres(url) => DbConnection::Pg(
                PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?,
            ),
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&sqlite_uri(path))
                    .map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute(SQLITE_SETTINGS)
                    .map_err(r2d2::Error::QueryError)?;
                DbConnection::Sqlite(c)
            }
        };
        Ok(PoolSlot {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, slot: &mut PoolSlot) -> Result<(), r2d2::Error> {
        slot.conn
            .batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, slot: &mut PoolSlot) -> bool {
        slot.broken || diesel::r2d2::R2D2Connection::is_broken(&mut slot.conn)
    }
}

/// The shared database handle of the app: a pool, the backend it talks to, and SQLite's
/// writer thread.
#[derive(Clone)]
pub struct Db {
    pool: Pool<DbManager>,
    url: DatabaseUrl,
    /// SQLite admits one writer at a time. A writer that finds the write lock taken sleeps in
    /// the busy handler with a growing back-off (1, 2, 5 … 100 ms) and may lose the lock again
    /// to a newer writer, so a burst of writes left most of the CPU idle and some writers
    /// waiting seconds. Writes are queued here instead, first come first served, to one
    /// thread that runs what is waiting in one transaction ([`writer`]). PostgreSQL has none:
    /// its row locks let writers to different rows go together.
    lane: Option<writer::Lane>,
    /// How long a caller waits for a connection, or for its turn on the writer thread, before the
    /// database counts as unavailable (`DATABASE_TIMEOUT`).
    timeout: Duration,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("url", &self.url).finish()
    }
}

impl Db {
    /// Builds the pool without connecting; the first use connects.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        if let DatabaseUrl::Sqlite(path) = &config.database_url {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            // Create the file once, so later connects can insist it exists (`mode=rw`).
            if !path.exists() {
                SqliteConnection::establish(&path.display().to_string())?;
            }
        }
        let pool = Pool::builder()
            .max_size(config.database_pool_size)
            .min_idle(Some(0))
            .connection_timeout(config.database_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(LogPoolErrors))
            .build_unchecked(DbManager {
                url: config.database_url.clone(),
            });
        let lane = match &config.database_url {
            DatabaseUrl::Sqlite(path) => Some(writer::spawn(pool.clone(), path.clone())?),
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self {
            pool,
            url: config.database_url.clone(),
            lane,
            timeout: config.database_timeout,
        })
    }

    /// The backend's name, for logs.
    pub fn backend(&self) -> &'static str {
        self.url.backend()
    }

    /// The pool's open and idle connections now, and the most it opens (for metrics).
    pub fn pool_state(&self) -> crate::metrics::PoolReading {
        let state = self.pool.state();
        crate::metrics::PoolReading {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }

    /// Checks out a connection on the calling (blocking) thread.
    pub fn get(&self) -> Result<PooledConnection<DbManager>, DbError> {
        if let DatabaseUrl::Sqlite(path) = &self.url
            && !path.exists()
        {
            return Err(DbError::Unavailable(
                "the SQLite database file is gone".into(),
            ));
        }
        self.pool
            .get()
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs `f` with a pooled connection on the blocking pool, never on an async worker.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        match tokio::task::spawn_blocking(move || db.run_blocking(f)).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(E::from(DbError::Unavailable(
                "the database task was cancelled".into(),
            ))),
        }
    }

    /// Runs `f` in one write transaction off the async workers: its changes are committed
    /// when it returns `Ok` and rolled back when it returns `Err`. On SQLite it is queued to
    /// the writer thread, which may run it in one transaction with other waiting writes, in a
    /// savepoint of its own ([`writer`]); on PostgreSQL it runs in [`write_transaction`] on the
    /// blocking pool. A queued write runs even if the caller stopped waiting meanwhile.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        if self.lane.is_some() {
            return self.queue(f).await;
        }
        self.run(move |conn| write_transaction(conn, f)).await
    }

    /// Runs `f`, one statement that decides by itself (a conditional UPDATE, say), off the
    /// async workers: on SQLite queued to the writer thread like [`Db::write`]; on PostgreSQL
    /// without a transaction around it, saving the `BEGIN` and `COMMIT` round trips.
    pub async fn write_one<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        if self.lane.is_some() {
            return self.queue(f).await;
        }
        self.run(f).await
    }

    /// Queues `f` to SQLite's writer thread and waits for its answer, given once the write's
    /// transaction has committed or rolled back. A write that waited longer than
    /// `DATABASE_TIMEOUT` in the queue is not run: the database counts as unavailable (503),
    /// as after a wait for a connection.
    async fn queue<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let gone = || {
            E::from(DbError::Unavailable(
                "the SQLite writer is not running".into(),
            ))
        };
        let Some(lane) = &self.lane else {
            return Err(gone());
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Box::new(writer::Queued {
            f,
            answer,
            deadline: std::time::Instant::now() + self.timeout,
        });
        lane.send(job).map_err(|_| gone())?;
        match answered.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(gone()),
        }
    }

    /// Runs `f`, which only reads, with a pooled connection. On SQLite it runs right here, on
    /// the calling async worker, when a connection is idle: in WAL mode a reader never waits
    /// for a writer, and a read of a few rows costs less than handing it to a blocking thread
    /// and back (two context switches, which bounded the cheap authenticated reads). On
    /// PostgreSQL a read is a network round trip, and with no idle SQLite connection the
    /// caller would wait for one: both go to the blocking pool as in [`Db::run`]. Never give
    /// it a write: on SQLite a write may wait for the write lock.
    ///
    /// On SQLite `f` runs in one read transaction ([`sqlite_snapshot`]): its statements see one
    /// state of the database, and `GET /recovery-requests/{id}` (six statements) answered 45 %
    /// more requests a second. A read of one statement gains nothing from it and pays for
    /// `BEGIN` and its end: [`Db::read_one`].
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.read_as(true, f).await
    }

    /// [`Db::read`] for `f` that runs exactly one statement (its own snapshot), without the
    /// transaction around it.
    pub async fn read_one<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.read_as(false, f).await
    }

    /// [`Db::read`] (`snapshot`) or [`Db::read_one`]: on the calling worker or the blocking
    /// pool alike.
    async fn read_as<T, E, F>(&self, snapshot: bool, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let f = move |conn: &mut DbConnection| {
            if snapshot {
                sqlite_snapshot(conn, f)
            } else {
                f(conn)
            }
        };
        if self.lane.is_some()
            && let Some(slot) = self.try_get()
        {
            return Self::run_on(slot, f);
        }
        self.run(f).await
    }

    /// An idle connection, if the pool has one now (SQLite only: see [`Db::read`]).
    ///
    /// Unlike [`Db::get`], it does not look for the database file first: that `stat` took 7 %
    /// of the workers' time in `GET /account`. Should the file be deleted under the running
    /// server, a read on an open connection still answers from what the file held (SQLite keeps
    /// it open), while every write, the readiness probe, and a read needing a new connection
    /// answer 503.
    fn try_get(&self) -> Option<PooledConnection<DbManager>> {
        match &self.url {
            DatabaseUrl::Sqlite(_) => self.pool.try_get(),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// Runs `f` with a pooled connection on the calling thread (which must be allowed to block).
    pub fn run_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
        E: From<DbError>,
    {
        let slot = self.get().map_err(E::from)?;
        Self::run_on(slot, f)
    }

    /// Runs `f` on `slot`, and marks the connection broken if it failed because of it.
    fn run_on<T, E, F>(mut slot: PooledConnection<DbManager>, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E>,
    {
        let result = f(&mut slot.conn);
        // A failure may mean the server dropped the connection: check before it goes back to
        // the pool, so the next request gets a fresh one once the database is back.
        if result.is_err()
            && (diesel::r2d2::R2D2Connection::is_broken(&mut slot.conn)
                || slot.conn.batch_execute("SELECT 1").is_err())
        {
            slot.broken = true;
        }
        result
    }

    /// Applies the pending migrations of the configured backend, then fills what SQL could not
    /// (the look-alike keys of older accounts); a second run changes nothing. Returns the names
    /// of the migrations applied.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut slot = self.get()?;
        let conn = &mut slot.conn;
        let applied = match conn {
            DbConnection::Pg(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
            DbConnection::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
        };
        // Data the migrations could not compute in SQL (look-alike keys of older accounts).
        let filled = repo::accounts::fill_missing_skeletons(conn)
            .map_err(|e| anyhow::anyhow!("filling look-alike keys failed: {e}"))?;
        if filled > 0 {
            tracing::info!(
                keys = filled,
                "filled the look-alike keys of older accounts"
            );
        }
        Ok(applied)
    }

    /// Answers whether the database serves queries now (for `/health/ready`).
    pub fn ping_blocking(&self) -> Result<(), DbError> {
        self.run_blocking(|conn| {
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map(|_| ())
                .map_err(DbError::from)
        })
    }

    /// Answers whether writes commit now (for `/health/ready`): rewrites the heartbeat row in
    /// a write transaction and commits. A read would pass on a full disk or a read-only
    /// database, where every write fails. On SQLite it then runs a passive checkpoint: with a
    /// full disk the write-ahead log can still take a small commit into space it already has,
    /// but its pages cannot move into the database file, so the log only grows and the next
    /// larger write fails; the checkpoint shows that now.
    pub fn probe_write_blocking(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(), DbError> {
        self.run_blocking(|conn| {
            write_transaction(conn, |conn| repo::heartbeat::beat(conn, now))
                .map_err(DbError::from)?;
            if let DbConnection::Sqlite(c) = conn {
                c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
                    .map_err(DbError::from)?;
            }
            Ok(())
        })
    }

    /// The SQLite file, when that is the backend.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.url {
            DatabaseUrl::Sqlite(p) => Some(p.clone()),
            DatabaseUrl::Postgres(_) => None,
        }
    }
}

#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<r2d2::Error> for LogPoolErrors {
    fn handle_error(&self, error: r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (so concurrent writers wait
/// on the busy timeout instead of failing on the lock upgrade), `BEGIN` on PostgreSQL. Commits
/// when `f` returns `Ok`, rolls back otherwise. Nested `transaction()` calls become savepoints.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
        }
        DbConnection::Pg(c) => {
            AnsiTransactionManager::begin_transaction(c)?;
        }
    }
    let result = f(conn);
    let end = match (&result, &mut *conn) {
        (Ok(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::commit_transaction(c),
        (Ok(_), DbConnection::Pg(c)) => AnsiTransactionManager::commit_transaction(c),
        (Err(_), DbConnection::Sqlite(c)) => AnsiTransactionManager::rollback_transaction(c),
        (Err(_), DbConnection::Pg(c)) => AnsiTransactionManager::rollback_transaction(c),
    };
    match (result, end) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => Err(E::from(e)),
        // The closure's own error says more than a failed rollback.
        (Err(e), _) => Err(e),
    }
}

/// Runs `f`, a read, in one deferred transaction on SQLite, ended without committing anything:
/// its statements see one snapshot, and take the read lock of the shared WAL index once instead
/// of once each (those locks, under one mutex for all the process's connections, were 15 % of
/// the workers' time in a read of two statements). On PostgreSQL `f` runs as it is: there a
/// transaction would cost two more round trips. If the transaction cannot be ended, the
/// connection counts as broken (diesel's transaction depth stays above zero) and r2d2 drops it.
fn sqlite_snapshot<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<DbError>,
{
    let DbConnection::Sqlite(c) = conn else {
        return f(conn);
    };
    AnsiTransactionManager::begin_transaction(c).map_err(|e| E::from(DbError::from(e)))?;
    let result = f(conn);
    let end = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
        DbConnection::Pg(_) => Ok(()),
    };
    match (result, end) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) => Err(E::from(DbError::from(e))),
        (Err(e), _) => Err(e),
    }
}

/// Waits up to `timeout` for the first connection, for a clear start-up error.
pub fn wait_until_reachable(db: &Db, timeout: Duration) -> Result<(), DbError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match db.ping_blocking() {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[cfg(test)]
mod tests;

//! SQLite's writer thread: every write of the app, queued and run back to back, several in one
//! transaction (group commit).
//!
//! SQLite admits one writer at a time. Writers that each open their own transaction find the
//! lock taken and sleep in the busy handler; queued to one thread they run back to back
//! instead. Each commit still costs the writer the same again: `BEGIN IMMEDIATE`, the lock,
//! writing the changed pages to the log and `COMMIT`, and under a burst most writes change
//! the same few pages (a rate-limit bucket, the outbox's and the audit log's last pages). So
//! the thread takes every write that is waiting (up to [`GROUP_MAX`]) and runs them in one
//! transaction, each in a savepoint of its own: a write that fails is rolled back to its
//! savepoint and leaves the others alone, exactly as if it had run alone. Nobody is answered
//! before the group's `COMMIT`: a write is reported done only once it is durable as the
//! database's settings make it. If the group cannot commit, every write in it gets the error
//! (a 503: the database could not take writes), none is half done.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use diesel::RunQueryDsl;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::{Pool, PooledConnection};

use super::{DbConnection, DbError, DbManager};

/// The most writes one transaction takes. A group holds its callers until its `COMMIT`, so it
/// stays small enough that the first of them hardly waits for the last.
const GROUP_MAX: usize = 64;

/// A write waiting for the writer thread.
pub(super) trait QueuedWrite: Send {
    /// Runs the write inside the group's transaction. Never panics: a panic of the write is
    /// caught and becomes its answer.
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Ran;
    /// Answers `error` without running the write.
    fn refuse(self: Box<Self>, error: DbError);
}

/// A write that ran: whether it succeeded (its changes stay in the group) and how to answer
/// it once the group's fate is known.
pub(super) struct Ran {
    ok: bool,
    /// Called with `None` when the group committed (or the write had failed anyway), with
    /// the group's error when it did not commit.
    answer: Box<dyn FnOnce(Option<DbError>) + Send>,
}

/// What a caller gets back: its result, or the panic of its closure.
pub(super) type Answer<T, E> = std::thread::Result<Result<T, E>>;

/// One caller's write: the closure, where to send its answer, and until when it may start.
pub(super) struct Queued<F, T, E> {
    pub(super) f: F,
    pub(super) answer: tokio::sync::oneshot::Sender<Answer<T, E>>,
    pub(super) deadline: Instant,
}

impl<F, T, E> QueuedWrite for Queued<F, T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection) -> Ran {
        let Queued {
            f,
            answer,
            deadline,
        } = *self;
        let result: Answer<T, E> = if Instant::now() > deadline {
            Ok(Err(E::from(DbError::Unavailable(
                "timed out waiting for the SQLite writer".into(),
            ))))
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        };
        let ok = matches!(result, Ok(Ok(_)));
        Ran {
            ok,
            answer: Box::new(move |group_failed: Option<DbError>| {
                let result = match (result, group_failed) {
                    (Ok(Ok(_)), Some(e)) => Ok(Err(E::from(e))),
                    (result, _) => result,
                };
                // The caller may have stopped waiting; its write has run or not, as said.
                let _ = answer.send(result);
            }),
        }
    }

    fn refuse(self: Box<Self>, error: DbError) {
        let _ = self.answer.send(Ok(Err(E::from(error))));
    }
}

/// The queue's sending end, one per [`super::Db`] clone.
pub(super) type Lane = mpsc::Sender<Box<dyn QueuedWrite>>;

/// Starts the writer thread and its checkpointer; both end when every [`Lane`] is gone.
pub(super) fn spawn(pool: Pool<DbManager>, path: PathBuf) -> std::io::Result<Lane> {
    spawn_with(pool, path, Checkpoints::DEFAULT)
}

/// When the log is copied back into the database file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checkpoints {
    /// The least time between two of the checkpointer's passes.
    pub(super) pause: std::time::Duration,
    /// Log frames (pages) past which the writer restarts the log.
    pub(super) restart_frames: i64,
}

impl Checkpoints {
    /// A pass at most every 100 ms; a restart once the log holds 65,536 pages (256 MiB of
    /// 4 KiB pages). Under the benchmark's heaviest write burst (about 200 MB of log a
    /// second) that is a pause of the writer (what is left to copy, and two `fsync`s) a bit
    /// more than once a second. A quarter of the limit measured the same, four times it made
    /// the tails longer (docs/benchmarks.md, sixth sitting). When writes let up, the
    /// checkpointer catches up and SQLite restarts the log at the next write by itself.
    const DEFAULT: Self = Self {
        pause: std::time::Duration::from_millis(100),
        restart_frames: 65_536,
    };
}

/// Like [`spawn`], with the checkpoint settings given (the tests make them small).
///
/// SQLite copies the log (WAL) back into the database file in a checkpoint, which ends in two
/// `fsync`s. Left to SQLite (`wal_autocheckpoint`), the commit that passes the threshold runs
/// it, on the writer thread: under a burst of password resets that was eight checkpoints a
/// second of about 33 ms each, during which every queued write waited (perf: the writer's
/// `fsync`s; p99 at 20 times p50). Here the connections never checkpoint on commit
/// (`wal_autocheckpoint = 0`, [`super::SQLITE_SETTINGS`]); a thread of its own runs a
/// `PASSIVE` checkpoint after commits, at most once per `pause`, beside the writer, which goes
/// on appending. The log starts again from its beginning at a write that finds all of it
/// copied and no reader in it; while the writer appends beside the checkpointer that never
/// happens, so the log would grow for as long as a burst lasts. Once it holds `restart_frames`
/// pages, the checkpointer asks the writer, which runs a passive checkpoint itself between two
/// groups: with no write beside it, it copies the rest, and the next group's first write
/// restarts the log (SQLite's `walRestartLog`) unless a reader that began before is still in
/// it, in which case the checkpointer asks again. Nothing waits for readers: SQLite's
/// `RESTART` checkpoint did, in the busy handler's sleeps, with every queued write behind it
/// (docs/benchmarks.md, sixth sitting).
pub(super) fn spawn_with(
    pool: Pool<DbManager>,
    path: PathBuf,
    checkpoints: Checkpoints,
) -> std::io::Result<Lane> {
    let (lane, queue) = mpsc::channel::<Box<dyn QueuedWrite>>();
    let (committed, commits) = mpsc::sync_channel::<()>(1);
    let restart_due = Arc::new(AtomicBool::new(false));
    {
        let (pool, restart_due) = (pool.clone(), restart_due.clone());
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpointer(&pool, &commits, &restart_due, checkpoints))?;
    }
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut group = Vec::with_capacity(GROUP_MAX);
                group.push(first);
                while group.len() < GROUP_MAX {
                    match queue.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                run_group(&pool, &path, group);
                // The checkpointer pauses while a restart is due (SQLite runs one checkpoint
                // at a time); one that could not copy everything is tried after the next group.
                if restart_due.load(Ordering::Acquire)
                    && checkpoint(&pool).is_some_and(|state| state.copied_all())
                {
                    restart_due.store(false, Ordering::Release);
                }
                // Wakes the checkpointer; a wake-up already waiting covers this commit too.
                let _ = committed.try_send(());
            }
        })?;
    Ok(lane)
}

/// Runs a passive checkpoint after commits, at most once per `pause`, and asks the writer for
/// a restart once the log is long; it runs none while that restart is due. Ends with the
/// writer (the only sender of `commits`).
fn checkpointer(
    pool: &Pool<DbManager>,
    commits: &mpsc::Receiver<()>,
    restart_due: &AtomicBool,
    checkpoints: Checkpoints,
) {
    while commits.recv().is_ok() {
        if !restart_due.load(Ordering::Acquire)
            && checkpoint(pool)
                .is_some_and(|state| i64::from(state.log) >= checkpoints.restart_frames)
        {
            restart_due.store(true, Ordering::Release);
        }
        std::thread::sleep(checkpoints.pause);
    }
}

/// What `PRAGMA wal_checkpoint` answers.
#[derive(diesel::QueryableByName)]
struct WalCheckpoint {
    /// 1 when the checkpoint could not run (another one was running).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// The frames in the log (since its last restart).
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    /// The frames of the log copied into the database file.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

impl WalCheckpoint {
    /// Everything in the log is in the database file: the next write may start it again.
    fn copied_all(&self) -> bool {
        self.busy == 0 && self.checkpointed == self.log
    }
}

/// Runs a passive checkpoint (it never waits for readers or the writer); answers what SQLite
/// answered, or `None` when it failed (logged: the next one tries again, and nothing is lost
/// meanwhile, the log only grows).
fn checkpoint(pool: &Pool<DbManager>) -> Option<WalCheckpoint> {
    let result = pool.get().map_err(|e| e.to_string()).and_then(|mut slot| {
        diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
            .get_result::<WalCheckpoint>(&mut slot.conn)
            .map_err(|e| e.to_string())
    });
    result
        .map_err(|error| tracing::warn!(%error, "the SQLite checkpoint failed"))
        .ok()
}

/// Runs `group` in one transaction and answers every write in it.
fn run_group(pool: &Pool<DbManager>, path: &std::path::Path, group: Vec<Box<dyn QueuedWrite>>) {
    let mut slot = match connection(pool, path) {
        Ok(slot) => slot,
        Err(e) => return refuse_all(group, &e),
    };
    let conn = &mut slot.conn;
    if let Err(e) = begin(conn) {
        let e = DbError::from(e);
        slot.broken = !usable(&mut slot.conn);
        return refuse_all(group, &e);
    }
    // A group of one needs no savepoint: its transaction is its own.
    let alone = group.len() == 1;
    let mut ran: Vec<Ran> = Vec::with_capacity(group.len());
    let mut failed: Option<DbError> = None;
    let mut waiting = group.into_iter();
    for write in waiting.by_ref() {
        if !alone && let Err(e) = step(conn, Step::Savepoint) {
            failed = Some(DbError::from(e));
            write.refuse(again(failed.as_ref()));
            break;
        }
        let outcome = write.run(conn);
        // Whatever the write left open (a panic inside a nested transaction), close it first.
        let depth = if alone { 1 } else { 2 };
        let settled = settle(conn, depth).and_then(|()| match (alone, outcome.ok) {
            (true, _) => Ok(()),
            (false, true) => step(conn, Step::Release),
            (false, false) => step(conn, Step::RollbackTo),
        });
        ran.push(outcome);
        if let Err(e) = settled {
            failed = Some(DbError::from(e));
            break;
        }
    }
    for write in waiting {
        write.refuse(again(failed.as_ref()));
    }
    if failed.is_none() {
        let end = if alone && !ran.first().is_some_and(|r| r.ok) {
            step(conn, Step::Rollback)
        } else {
            step(conn, Step::Commit)
        };
        if let Err(e) = end {
            failed = Some(DbError::from(e));
        }
    }
    if failed.is_some() {
        // Nothing of the group may stay: roll back what is still open.
        if settle(conn, 0).is_err() || !usable(conn) {
            slot.broken = true;
        }
    }
    for write in ran {
        (write.answer)(failed.as_ref().map(|e| again(Some(e))));
    }
}

/// A connection for one group; the file must still be there (`mode=rw` would not create it,
/// but an open connection would go on writing to the deleted file).
fn connection(
    pool: &Pool<DbManager>,
    path: &std::path::Path,
) -> Result<PooledConnection<DbManager>, DbError> {
    if !path.exists() {
        return Err(DbError::Unavailable(
            "the SQLite database file is gone".into(),
        ));
    }
    pool.get().map_err(|e| DbError::Unavailable(e.to_string()))
}

fn refuse_all(group: Vec<Box<dyn QueuedWrite>>, error: &DbError) {
    for write in group {
        write.refuse(again(Some(error)));
    }
}

/// The group's failure, told to one of its writes: the database could not take the writes
/// now (a 503), whatever the underlying error was.
fn again(error: Option<&DbError>) -> DbError {
    DbError::Unavailable(match error {
        Some(e) => format!("the write could not be committed: {e}"),
        None => "the write could not be committed".into(),
    })
}

/// Whether the connection still answers.
fn usable(conn: &mut DbConnection) -> bool {
    !diesel::r2d2::R2D2Connection::is_broken(conn) && conn.batch_execute("SELECT 1").is_ok()
}

fn begin(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        DbConnection::Pg(c) => AnsiTransactionManager::begin_transaction(c),
    }
}

#[derive(Clone, Copy)]
enum Step {
    Savepoint,
    Release,
    RollbackTo,
    Commit,
    Rollback,
}

/// One transaction step through diesel's transaction manager, so that its idea of the depth
/// stays the database's.
fn step(conn: &mut DbConnection, step: Step) -> diesel::QueryResult<()> {
    fn on<C>(c: &mut C, step: Step) -> diesel::QueryResult<()>
    where
        C: diesel::Connection<TransactionManager = AnsiTransactionManager>,
    {
        match step {
            Step::Savepoint => AnsiTransactionManager::begin_transaction(c),
            Step::Release | Step::Commit => AnsiTransactionManager::commit_transaction(c),
            Step::RollbackTo | Step::Rollback => AnsiTransactionManager::rollback_transaction(c),
        }
    }
    match conn {
        DbConnection::Sqlite(c) => on(c, step),
        DbConnection::Pg(c) => on(c, step),
    }
}

/// Rolls back until the transaction depth is `depth` (0: no transaction open).
fn settle(conn: &mut DbConnection, depth: u32) -> diesel::QueryResult<()> {
    fn current<C>(c: &mut C) -> diesel::QueryResult<u32>
    where
        C: diesel::Connection<TransactionManager = AnsiTransactionManager>,
    {
        Ok(AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .map_or(0, std::num::NonZeroU32::get))
    }
    loop {
        let now = match conn {
            DbConnection::Sqlite(c) => current(c)?,
            DbConnection::Pg(c) => current(c)?,
        };
        if now <= depth {
            return if now == depth {
                Ok(())
            } else {
                Err(diesel::result::Error::NotInTransaction)
            };
        }
        step(conn, Step::Rollback)?;
    }
}

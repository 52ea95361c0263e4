//! Unit tests of the pool's connections and of the read snapshot.

use super::*;

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

#[derive(diesel::QueryableByName)]
struct Autocheckpoint {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    wal_autocheckpoint: i32,
}

/// A setting that SQLite also offers as a table (`pragma_<name>`).
fn setting(conn: &mut DbConnection, name: &str) -> String {
    let sql = format!("SELECT CAST((SELECT * FROM pragma_{name}) AS TEXT) AS value");
    diesel::sql_query(sql)
        .get_result::<Setting>(conn)
        .expect("pragma")
        .value
}

#[derive(diesel::QueryableByName)]
struct Value {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    v: i32,
}

fn value(conn: &mut DbConnection) -> Result<i32, DbError> {
    Ok(diesel::sql_query("SELECT v FROM t")
        .get_result::<Value>(conn)?
        .v)
}

/// A read's statements see one state, and the read ends its transaction whether it
/// succeeds or fails, so the next read on the connection sees later writes.
#[test]
fn a_read_sees_one_snapshot_and_ends_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snapshot.db");
    std::fs::File::create(&path).expect("db file");
    let manager = DbManager {
        url: DatabaseUrl::Sqlite(path),
    };
    let (mut reader, mut writer) = (
        manager.connect().expect("connect"),
        manager.connect().expect("connect"),
    );
    let write = |w: &mut DbConnection, v: i32| {
        w.batch_execute(&format!("UPDATE t SET v = {v}"))
            .expect("write");
    };
    writer
        .conn
        .batch_execute("CREATE TABLE t (v INTEGER NOT NULL); INSERT INTO t VALUES (1)")
        .expect("table");
    let seen = sqlite_snapshot(&mut reader.conn, |conn| -> Result<_, DbError> {
        let first = value(conn)?;
        write(&mut writer.conn, 2);
        Ok((first, value(conn)?))
    })
    .expect("read");
    assert_eq!(
        seen,
        (1, 1),
        "a write in the middle of a read showed through"
    );
    assert_eq!(value(&mut reader.conn).expect("read"), 2);

    let failed = sqlite_snapshot(&mut reader.conn, |conn| -> Result<i32, DbError> {
        value(conn)?;
        Err(DbError::Unavailable("the read failed".into()))
    });
    assert!(failed.is_err());
    write(&mut writer.conn, 3);
    assert_eq!(value(&mut reader.conn).expect("read"), 3);
}

/// `.cargo/config.toml` builds the bundled SQLite with the query planner stability
/// guarantee on. Without it, a cached statement with `LIMIT ?` (every page of a list) is
/// prepared again on each execution, because the planner reads the bound value.
#[test]
fn sqlite_plans_do_not_depend_on_bound_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("qpsg.db");
    std::fs::File::create(&path).expect("db file");
    let manager = DbManager {
        url: DatabaseUrl::Sqlite(path),
    };
    let mut slot = manager.connect().expect("connect");
    let built_with = diesel::sql_query(
        "SELECT CAST(count(*) AS INTEGER) AS v FROM pragma_compile_options \
         WHERE compile_options = 'ENABLE_QPSG'",
    )
    .get_result::<Value>(&mut slot.conn)
    .expect("compile options");
    assert_eq!(
        built_with.v, 1,
        "SQLite was built without SQLITE_ENABLE_QPSG (LIBSQLITE3_FLAGS in .cargo/config.toml)"
    );
}

/// The settings are per connection: each one the pool opens must have them.
#[test]
fn every_sqlite_connection_gets_the_settings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("settings.db");
    std::fs::File::create(&path).expect("db file");
    let manager = DbManager {
        url: DatabaseUrl::Sqlite(path),
    };
    for _ in 0..2 {
        let mut slot = manager.connect().expect("connect");
        let conn = &mut slot.conn;
        assert_eq!(setting(conn, "journal_mode"), "wal");
        assert_eq!(setting(conn, "synchronous"), "1");
        assert_eq!(setting(conn, "foreign_keys"), "1");
        assert_eq!(setting(conn, "temp_store"), "2");
        let checkpoint = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .get_result::<Autocheckpoint>(conn)
            .expect("pragma");
        assert_eq!(checkpoint.wal_autocheckpoint, 0);
        assert_eq!(setting(conn, "busy_timeout"), "5000");
    }
}

/// How many times the log was restarted: the checkpoint sequence number of its header (bytes
/// 12 to 15, big-endian), which SQLite counts up at each restart. Reading the file leaves
/// SQLite alone.
fn log_restarts(db: &std::path::Path) -> u32 {
    let mut log = db.as_os_str().to_owned();
    log.push("-wal");
    let header = std::fs::read(&log).expect("log file");
    let field: [u8; 4] = header
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .expect("log header");
    u32::from_be_bytes(field)
}

/// The writer's commits leave the copying of the log to the checkpointer, and past its limit
/// the log is restarted (without it, every write of a burst made the log longer). Writes go
/// on until two restarts were seen, so a slow machine only takes more of them.
#[test]
fn the_log_is_restarted_once_it_passes_its_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("checkpoints.db");
    std::fs::File::create(&path).expect("db file");
    let pool = Pool::builder().max_size(3).build_unchecked(DbManager {
        url: DatabaseUrl::Sqlite(path.clone()),
    });
    pool.get()
        .expect("connect")
        .conn
        .batch_execute("CREATE TABLE t (n INTEGER NOT NULL, filler BLOB NOT NULL)")
        .expect("table");
    let checkpoints = writer::Checkpoints {
        pause: Duration::ZERO,
        restart_frames: 64,
    };
    let lane = writer::spawn_with(pool, path.clone(), checkpoints).expect("writer");
    let before = log_restarts(&path);
    // Each write adds a few pages to the log (the row spills into an overflow page), so 64
    // pages are passed every few dozen writes; 2,000 writes leave a wide margin.
    let mut restarts = 0;
    for n in 0..2_000 {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let write = move |conn: &mut DbConnection| -> Result<(), DbError> {
            Ok(conn.batch_execute(&format!("INSERT INTO t VALUES ({n}, randomblob(4000))"))?)
        };
        lane.send(Box::new(writer::Queued {
            f: write,
            answer,
            deadline: std::time::Instant::now() + Duration::from_secs(30),
        }))
        .expect("writer running");
        answered
            .blocking_recv()
            .expect("answered")
            .expect("no panic")
            .expect("written");
        restarts = log_restarts(&path) - before;
        if restarts >= 2 {
            break;
        }
    }
    assert!(restarts >= 2, "the log was restarted {restarts} times");
}

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
        assert_eq!(checkpoint.wal_autocheckpoint, 4000);
        assert_eq!(setting(conn, "busy_timeout"), "5000");
    }
}

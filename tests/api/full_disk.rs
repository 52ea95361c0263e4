//! A full disk under SQLite: writes are 503 problems with `Retry-After` (not 500s), readiness
//! fails while writes cannot commit, and both come back by themselves once space is freed,
//! with the database intact.
//!
//! The disk is a small tmpfs the test mounts, so it needs root (as in CI); otherwise the test
//! says why and passes without running. It always unmounts, also when an assertion fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::{Connection as _, RunQueryDsl as _};
use serde_json::json;

use crate::support::{PASSWORD, json, problem, spawn_app_with};

/// The size of the disk: room for the database and a few hundred writes.
const DISK: &str = "4m";

/// A tmpfs mounted on a fresh folder; unmounted (lazily, so never blocked by a file still
/// open) and removed when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts it, or says why it cannot.
    fn mount() -> Result<Self, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("cannot run `id`: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("mounting a tmpfs needs root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={DISK}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map_err(|e| format!("cannot run `mount`: {e}"))?;
        if !status.success() {
            return Err(format!("`mount -t tmpfs` failed: {status}"));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full (bounded by the disk's size); returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let chunk = vec![0x5a_u8; 16 * 1024];
        // 4 MiB in 16 KiB chunks is 256; the bound leaves room for nothing more.
        for _ in 0..400 {
            if file
                .write_all(&chunk)
                .and_then(|()| file.sync_all())
                .is_err()
            {
                return path;
            }
        }
        panic!("the disk never filled up");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_is_a_503_and_unready_until_space_returns_with_the_database_intact() {
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("skipped: the full-disk test fills a SQLite disk (unset TEST_POSTGRES_URL)");
        return;
    }
    // Declared before the app, so it is dropped (unmounted) after the app stopped using it.
    let disk = match SmallDisk::mount() {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let db_path = disk.path().join("test.db");
    let url = db_path.display().to_string();
    let app = spawn_app_with(|env| {
        env.insert("DATABASE_URL".into(), url.clone());
        env.insert("DATABASE_TIMEOUT".into(), "1s".into());
        env.insert("RATE_LIMIT_REGISTRATION_PER_IP".into(), "100000/1h".into());
    })
    .await;
    app.verified_user("ana", "ana@example.com", PASSWORD).await;
    json(app.get("/health/ready").await, 200).await;
    let register = |i: usize| {
        app.post(
            "/api/v1/accounts",
            json!({"username": format!("user{i}"), "email": format!("user{i}@example.com"),
                "password": PASSWORD}),
        )
    };

    let filler = disk.fill();
    // Readiness fails while writes cannot commit (bounded: a few probes).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut extra = 10_000;
    loop {
        let res = app.get("/health/ready").await;
        if res.status() == 503 {
            assert!(res.headers().contains_key("retry-after"));
            problem(res, 503, "service_unavailable").await;
            break;
        }
        assert_eq!(res.status(), 200);
        assert!(Instant::now() < deadline, "still ready on a full disk");
        // Each write that still fits uses up what is left.
        extra += 1;
        let _ = register(extra).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes that still fit in space the database already holds may commit; the first that
    // needs more is a 503 with Retry-After, and so is every one after it. Never a 500.
    let mut first_refused = None;
    for i in 0..300 {
        let res = register(i).await;
        match res.status().as_u16() {
            201 => assert!(first_refused.is_none(), "a write committed after a 503"),
            503 => {
                let retry_after = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                problem(res, 503, "service_unavailable").await;
                assert!(retry_after.is_some_and(|s| s >= 1), "no Retry-After");
                first_refused.get_or_insert(i);
                if i >= first_refused.unwrap_or(i) + 5 {
                    break;
                }
            }
            other => panic!(
                "write {i} answered {other}: {}",
                res.text().await.unwrap_or_default()
            ),
        }
    }
    assert!(
        first_refused.is_some(),
        "no write was refused on a full disk"
    );
    // A login writes a session: it too is a 503 unless its few bytes still fit.
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": "ana", "password": PASSWORD}),
        )
        .await;
    if res.status() != 200 {
        problem(res, 503, "service_unavailable").await;
    }
    problem(app.get("/health/ready").await, 503, "service_unavailable").await;
    json(app.get("/health/live").await, 200).await;

    // Space returns: readiness and writes come back without a restart.
    std::fs::remove_file(&filler).expect("free the space");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/health/ready").await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready 10 s after space returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    json(register(100_000).await, 201).await;
    app.login("ana", PASSWORD).await;

    let mut conn = diesel::SqliteConnection::establish(&url).expect("open the database");
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .expect("integrity check");
    let results: Vec<&str> = check.iter().map(|c| c.integrity_check.as_str()).collect();
    assert_eq!(results, ["ok"]);
    drop(conn);
    drop(app);
}

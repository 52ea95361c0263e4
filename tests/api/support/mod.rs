//! The test harness: the real app on a random port with a fresh database (SQLite in a temporary
//! folder, or a new PostgreSQL database when `TEST_POSTGRES_URL` is set), a real SMTP listener
//! on loopback, an HTTP client and a clock the test moves.

pub mod passkey;
pub mod process;
pub mod recovery;
pub mod relay;
pub mod smtp;
pub mod two_factor;

use std::collections::HashMap;
use std::sync::Arc;

use account_recovery::clock::ManualClock;
use account_recovery::config::Config;
use account_recovery::startup::{Application, ExtraRoutes, Signals};
use chrono::Utc;
use diesel::{Connection as _, RunQueryDsl as _};
use serde_json::Value;

pub use smtp::{Mail, SmtpSink};

/// A running app and everything a test drives it with.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// `http://127.0.0.1:PORT` of the metrics listener.
    pub metrics_address: String,
    /// The HTTP client (no redirects followed).
    pub http: reqwest::Client,
    /// The app's clock.
    pub clock: Arc<ManualClock>,
    /// The SMTP listener the app delivers to.
    pub smtp: SmtpSink,
    /// The database the app uses.
    pub db: TestDb,
    /// The environment the app was configured from.
    pub env: HashMap<String, String>,
}

/// A fresh database for one test; dropped with it.
pub enum TestDb {
    /// A SQLite file in a temporary folder.
    Sqlite(tempfile::TempDir),
    /// A PostgreSQL database created for the test.
    Postgres {
        /// The server's URL (with the admin database).
        admin_url: String,
        /// The database's name.
        name: String,
    },
}

impl TestDb {
    /// A new empty database.
    pub fn create() -> Self {
        match std::env::var("TEST_POSTGRES_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let admin_url = without_tls_unless_asked(&admin_url);
                let name = format!("ar_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&admin_url)
                    .expect("TEST_POSTGRES_URL must reach a PostgreSQL server");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                Self::Postgres { admin_url, name }
            }
            _ => Self::Sqlite(tempfile::tempdir().expect("temp dir")),
        }
    }

    /// The `DATABASE_URL` for the app.
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("test.db").display().to_string(),
            Self::Postgres { admin_url, name } => {
                let mut url = url::Url::parse(admin_url).expect("postgres url");
                url.set_path(name);
                url.to_string()
            }
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Makes the database disappear under the running app.
    pub fn destroy(&self) {
        match self {
            Self::Sqlite(dir) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(dir.path().join(format!("test.db{suffix}")));
                }
            }
            Self::Postgres { admin_url, name } => {
                if let Ok(mut conn) = diesel::PgConnection::establish(admin_url) {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn);
                }
            }
        }
    }
}

/// The test server is on loopback: unless the URL asks otherwise, connect without TLS. Apps of
/// finished tests may still be reconnecting in r2d2's threads when the test process exits, and a
/// TLS handshake racing OpenSSL's exit-time cleanup aborted the process once ("double free")
/// after every test had passed.
fn without_tls_unless_asked(admin_url: &str) -> String {
    let Ok(mut url) = url::Url::parse(admin_url) else {
        return admin_url.to_string();
    };
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    url.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.is_postgres() {
            self.destroy();
        }
    }
}

/// The settings every test app starts from: cheap argon2, SMTP to the sink, a fixed frontend.
/// New-device confirmation is off, so that tests about other things act as one client that
/// need not carry its device token; `tests/api/devices.rs` runs with the default.
pub fn base_env(db: &TestDb, smtp_port: u16) -> HashMap<String, String> {
    [
        ("APP_ENV", "development".to_string()),
        ("DATABASE_URL", db.url()),
        ("DATABASE_POOL_SIZE", "4".into()),
        ("BIND_ADDR", "127.0.0.1:0".into()),
        ("METRICS_BIND_ADDR", "127.0.0.1:0".into()),
        ("WORKERS", "2".into()),
        ("FRONTEND_URL", "https://frontend.test".into()),
        (
            "JWT_SECRET",
            "test-jwt-secret-of-at-least-32-bytes!!".into(),
        ),
        (
            "DATA_ENCRYPTION_KEY",
            "test-data-key-of-at-least-32-bytes!!!".into(),
        ),
        ("MAIL_TRANSPORT", "smtp".into()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        (
            "MAIL_FROM",
            "Account Recovery <no-reply@service.test>".into(),
        ),
        ("ARGON2_MEMORY_KIB", "64".into()),
        ("ARGON2_ITERATIONS", "1".into()),
        ("ARGON2_PARALLELISM", "1".into()),
        ("NEW_DEVICE_CONFIRMATION", "off".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Spawns the app with the base settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the app after `adjust` changed the settings.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    spawn_app_full(adjust, Some(probe_routes)).await.0
}

/// A running app's controls: stop it, and wait until everything it ran (the HTTP server, the
/// mail dispatcher, the maintenance loop) has ended.
pub struct Running {
    /// Stops the HTTP server, which then stops the rest.
    pub handle: actix_web::dev::ServerHandle,
    /// Ends when `run_until_stopped` returns.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Like [`spawn_app_with`], also returning what stops the app and tells when it ended.
pub async fn spawn_app_with_handle(
    adjust: impl FnOnce(&mut HashMap<String, String>),
) -> (TestApp, Running) {
    spawn_app_full(adjust, Some(probe_routes)).await
}

async fn spawn_app_full(
    adjust: impl FnOnce(&mut HashMap<String, String>),
    extra: Option<ExtraRoutes>,
) -> (TestApp, Running) {
    let smtp = SmtpSink::start().await;
    let db = TestDb::create();
    let mut env = base_env(&db, smtp.port());
    adjust(&mut env);
    let config = Config::from_map(&env).expect("test configuration is valid");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build_with(config, clock.clone(), Signals::Ignore, extra)
        .await
        .expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = format!("http://127.0.0.1:{}", app.metrics_port().unwrap_or(0));
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // The server closes a connection idle for 5 s (actix-web's keep-alive). A test that
        // blocks its runtime meanwhile (a database scan) never sees that close, and its next
        // request on the pooled connection would fail: drop idle ones well before.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client");
    let app = TestApp {
        address,
        metrics_address,
        http,
        clock,
        smtp,
        db,
        env,
    };
    (app, Running { handle, task })
}

/// Another app process on the database, SMTP sink and clock of a [`TestApp`].
pub struct Instance {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Stops this instance.
    pub handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    /// Starts a second `Application` with the same settings (database URL, SMTP sink, secrets)
    /// and the same clock, on its own port.
    pub async fn spawn_second_instance(&self) -> Instance {
        self.spawn_second_instance_with(|_| {}).await
    }

    /// Like [`TestApp::spawn_second_instance`], after `adjust` changed its settings (e.g. a
    /// different route to the database).
    pub async fn spawn_second_instance_with(
        &self,
        adjust: impl FnOnce(&mut HashMap<String, String>),
    ) -> Instance {
        let mut env = self.env.clone();
        adjust(&mut env);
        let config = Config::from_map(&env).expect("test configuration is valid");
        let app = Application::build_with(config, self.clock.clone(), Signals::Ignore, None)
            .await
            .expect("second instance builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Instance { address, handle }
    }
}

/// Routes only the tests mount: a handler that panics and one that echoes JSON.
fn probe_routes(cfg: &mut actix_web::web::ServiceConfig) {
    use actix_web::{HttpResponse, web};
    cfg.route(
        "/test/panic",
        web::get().to(|| async {
            if std::hint::black_box(true) {
                panic!("probe panic with a secret-looking value s3cr3t");
            }
            HttpResponse::Ok().finish()
        }),
    )
    .route(
        "/test/echo",
        web::post().to(|body: web::Json<EchoBody>| async move { HttpResponse::Ok().json(body.0) }),
    );
}

/// The echo probe's body.
#[derive(serde::Deserialize, serde::Serialize)]
pub struct EchoBody {
    /// A required string.
    pub name: String,
    /// A required number.
    pub count: i64,
}

impl TestApp {
    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET without credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// GET with a bearer token.
    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// POST a JSON body without credentials.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// POST a JSON body with a bearer token.
    pub async fn post_auth(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// PUT a JSON body with a bearer token.
    pub async fn put_auth(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http
            .put(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// DELETE with a bearer token.
    pub async fn delete_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Registers an account and returns the verification mail.
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Mail {
        let res = self
            .post(
                "/api/v1/accounts",
                serde_json::json!({"username": username, "email": email, "password": password}),
            )
            .await;
        json(res, 201).await;
        self.smtp
            .wait_for_subject(email, "Confirm your email address")
            .await
    }

    /// Registers and verifies an account; returns its access and refresh tokens.
    pub async fn verified_user(&self, username: &str, email: &str, password: &str) -> Tokens {
        let mail = self.register(username, email, password).await;
        let token = mail
            .link_param("verify-email", "token")
            .expect("verification link");
        json(
            self.post(
                "/api/v1/accounts/verify-email",
                serde_json::json!({"token": token}),
            )
            .await,
            200,
        )
        .await;
        self.login(username, password).await
    }

    /// Logs in (no 2FA) and returns the tokens.
    pub async fn login(&self, login: &str, password: &str) -> Tokens {
        let body = json(
            self.post(
                "/api/v1/sessions",
                serde_json::json!({"login": login, "password": password}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(body["status"], "authenticated", "{body}");
        Tokens {
            access: body["access_token"].as_str().expect("access").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
            device: body["device_token"].as_str().map(str::to_string),
        }
    }

    /// Resets the password through the emailed link, as the owner would: asks for a reset for
    /// `login`, reads the link mailed to `email` and sets `new_password` (204).
    pub async fn reset_password_by_mail(&self, login: &str, email: &str, new_password: &str) {
        let res = self
            .post(
                "/api/v1/password-resets",
                serde_json::json!({"login": login}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let mail = self.smtp.wait_for_subject(email, "Reset your").await;
        let token = mail
            .link_param("reset-password", "token")
            .expect("reset link");
        let res = self
            .post(
                "/api/v1/password-resets/confirm",
                serde_json::json!({"token": token, "new_password": new_password}),
            )
            .await;
        assert_eq!(res.status(), 204);
    }

    /// Asserts that the session of `tokens` is dead: its access token gets 401 `unauthorized`
    /// and its refresh token 401 `invalid_refresh_token`.
    pub async fn assert_session_dead(&self, tokens: &Tokens) {
        problem(
            self.get_auth("/api/v1/account", &tokens.access).await,
            401,
            "unauthorized",
        )
        .await;
        problem(
            self.post(
                "/api/v1/sessions/refresh",
                serde_json::json!({"refresh_token": tokens.refresh}),
            )
            .await,
            401,
            "invalid_refresh_token",
        )
        .await;
    }

    /// Asserts that the access token of `tokens` still reads the account.
    pub async fn assert_session_alive(&self, tokens: &Tokens) {
        json(self.get_auth("/api/v1/account", &tokens.access).await, 200).await;
    }

    /// A connection of the test's own to the app's database. On SQLite it waits for the app's
    /// background writers (mail, maintenance, reset jobs) instead of failing on their lock.
    fn direct_connection(&self) -> account_recovery::db::DbConnection {
        use diesel::connection::SimpleConnection as _;
        let mut conn = account_recovery::db::DbConnection::establish(&self.db.url())
            .expect("connect to the test database");
        if let account_recovery::db::DbConnection::Sqlite(c) = &mut conn {
            c.batch_execute("PRAGMA busy_timeout = 5000")
                .expect("busy timeout");
        }
        conn
    }

    /// Runs a statement on the app's database directly (test set-up only).
    pub fn exec(&self, sql: &str) {
        let mut conn = self.direct_connection();
        diesel::sql_query(sql)
            .execute(&mut conn)
            .expect("statement");
    }

    /// Registers a verified account and gives it the `support` role; returns its tokens.
    pub async fn support_user(&self, username: &str) -> Tokens {
        let email = format!("{username}@support.test");
        self.verified_user(username, &email, PASSWORD).await;
        self.exec(&format!(
            "UPDATE accounts SET role = 'support' WHERE username_key = '{}'",
            username.to_lowercase()
        ));
        self.login(username, PASSWORD).await
    }

    /// Runs a query on the app's database directly (for at-rest checks).
    pub fn db_texts(&self, sql: &str) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut conn = self.direct_connection();
        diesel::sql_query(sql)
            .load::<Row>(&mut conn)
            .expect("query")
            .into_iter()
            .map(|r| r.value)
            .collect()
    }
}

/// An access and refresh token pair.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// Access token.
    pub access: String,
    /// Refresh token.
    pub refresh: String,
    /// The device token the login answered (a new device), if any.
    pub device: Option<String>,
}

/// A password that passes the policy.
pub const PASSWORD: &str = "orbit lantern mosaic 42";

/// Reads a response as JSON, asserting its status.
pub async fn json(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Asserts a problem+json answer with `status` and `code`, and returns it.
pub async fn problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert_eq!(content_type, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "body: {text}");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {text}");
    }
    body
}

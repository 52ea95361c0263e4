//! Cookie sessions (API.md, "Browser sessions without tokens in JavaScript") and the refresh
//! reuse grace: cookies with the right attributes from every way a login completes, no tokens
//! in the body, the CSRF rule on cookie-authenticated writes, refresh through the cookie, logout
//! clearing the cookies, credentials-aware CORS, and a rotated refresh token presented again
//! inside `REFRESH_REUSE_GRACE` (a new pair on the same session), after it (the session
//! revoked), and in a burst.

use std::collections::HashMap;

use base64::Engine as _;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, Tokens, json, problem, spawn_app, spawn_app_with};

/// One `Set-Cookie` of an answer: its value and its attributes, lower-cased.
#[derive(Debug, Clone)]
struct SetCookie {
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a == &attribute.to_lowercase())
    }
}

/// The answer's `Set-Cookie` headers by cookie name.
fn set_cookies(res: &Response) -> HashMap<String, SetCookie> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|line| {
            let mut parts = line.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            Some((
                name.to_string(),
                SetCookie {
                    value: value.to_string(),
                    attributes: parts.map(str::to_lowercase).collect(),
                },
            ))
        })
        .collect()
}

/// A browser's view of one cookie session: its cookies and the CSRF token of the body.
#[derive(Debug, Clone)]
struct Jar {
    access: String,
    refresh: String,
    csrf: String,
}

impl Jar {
    fn header(&self) -> String {
        format!(
            "ar_access={}; ar_refresh={}; ar_csrf={}",
            self.access, self.refresh, self.csrf
        )
    }
}

/// Checks a cookie-mode answer (status 200, the three cookies with their attributes, no token
/// in the body, `csrf_token` equal to the readable cookie) and returns the jar and the body.
async fn cookie_answer(res: Response, names: [&str; 3]) -> (Jar, Value) {
    let cookies = set_cookies(&res);
    let body = json(res, 200).await;
    assert_eq!(body["status"], "authenticated", "{body}");
    assert!(
        body.get("access_token").is_none(),
        "no access token: {body}"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    let [access, refresh, csrf] = names.map(|n| {
        cookies
            .get(n)
            .unwrap_or_else(|| panic!("no {n} cookie in {cookies:?}"))
            .clone()
    });
    for (cookie, http_only) in [(&access, true), (&refresh, true), (&csrf, false)] {
        for attribute in ["secure", "samesite=strict", "path=/"] {
            assert!(cookie.has(attribute), "{cookie:?} lacks {attribute}");
        }
        assert_eq!(cookie.has("httponly"), http_only, "{cookie:?}");
        assert!(
            !cookie.attributes.iter().any(|a| a.starts_with("domain")),
            "{cookie:?}"
        );
        assert!(!cookie.value.is_empty());
    }
    assert!(access.has("max-age=900"), "{access:?}");
    assert!(refresh.has("max-age=2592000"), "{refresh:?}");
    assert_eq!(body["csrf_token"], csrf.value.as_str(), "{body}");
    let jar = Jar {
        access: access.value,
        refresh: refresh.value,
        csrf: csrf.value,
    };
    (jar, body)
}

const PLAIN: [&str; 3] = ["ar_access", "ar_refresh", "ar_csrf"];

async fn cookie_login(app: &TestApp) -> Jar {
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD, "session_transport": "cookie"}),
        )
        .await;
    cookie_answer(res, PLAIN).await.0
}

/// A request carrying the jar's cookies and, when given, an `X-CSRF-Token`.
fn with_cookies(
    app: &TestApp,
    method: Method,
    path: &str,
    jar: &Jar,
    csrf: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("Cookie", jar.header());
    if let Some(token) = csrf {
        req = req.header("X-CSRF-Token", token);
    }
    req
}

fn session_id_of(access_token: &str) -> String {
    let payload = access_token.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: Value = serde_json::from_slice(&bytes).expect("claims");
    claims["sid"].as_str().expect("sid").to_string()
}

#[tokio::test]
async fn a_cookie_login_sets_http_only_strict_cookies_and_answers_no_tokens() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let jar = cookie_login(&app).await;

    // The cookie alone reads the account (a GET needs no CSRF token).
    let account = json(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
    assert_eq!(account["username"], "jbber");

    // A bearer login is as before: tokens in the body, no cookies.
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD, "session_transport": "bearer"}),
        )
        .await;
    assert!(set_cookies(&res).is_empty());
    let body = json(res, 200).await;
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert!(body.get("csrf_token").is_none(), "{body}");

    // Any other transport is a field error.
    let body = problem(
        app.post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD, "session_transport": "Cookie"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "session_transport", "{body}");
}

#[tokio::test]
async fn with_an_https_public_url_the_cookies_are_host_prefixed() {
    let app = spawn_app_with(|env| {
        env.insert("PUBLIC_URL".into(), "https://api.example.test".into());
    })
    .await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let res = app
        .post(
            "/api/v1/sessions",
            json!({"login": "jbber", "password": PASSWORD, "session_transport": "cookie"}),
        )
        .await;
    let (jar, _) = cookie_answer(
        res,
        ["__Host-ar_access", "__Host-ar_refresh", "__Host-ar_csrf"],
    )
    .await;
    let res = app
        .http
        .get(app.url("/api/v1/account"))
        .header("Cookie", format!("__Host-ar_access={}", jar.access))
        .send()
        .await
        .expect("request");
    json(res, 200).await;
    // The unprefixed name means nothing here.
    let res = app
        .http
        .get(app.url("/api/v1/account"))
        .header("Cookie", format!("ar_access={}", jar.access))
        .send()
        .await
        .expect("request");
    problem(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn every_way_a_login_completes_can_use_cookies() {
    let app = spawn_app_with(|env| {
        // The recovery-code login from a new device waits for the emailed link.
        env.remove("NEW_DEVICE_CONFIRMATION");
    })
    .await;
    let user = app.with_two_factor("jbber", "jb@example.com").await;

    // TOTP.
    let mfa = app.mfa_token("jbber").await;
    let code = app.totp_now(&user.secret, 0);
    let res = app
        .post(
            "/api/v1/sessions/totp",
            json!({"mfa_token": mfa, "code": code, "session_transport": "cookie"}),
        )
        .await;
    let (jar, _) = cookie_answer(res, PLAIN).await;
    json(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;

    // A recovery code from a new device: no session yet, so no cookies.
    let mfa = app.mfa_token("jbber").await;
    let res = app
        .post(
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": mfa, "code": user.codes[0], "session_transport": "cookie"}),
        )
        .await;
    assert!(set_cookies(&res).is_empty());
    let body = json(res, 200).await;
    assert_eq!(body["status"], "email_confirmation_required", "{body}");

    // The emailed confirmation opens it, in cookie mode.
    let mail = app
        .smtp
        .wait_for_subject("jb@example.com", "Confirm a new sign-in")
        .await;
    let token = mail.link_param("confirm-login", "token").expect("link");
    let res = app
        .post(
            "/api/v1/sessions/confirm",
            json!({"token": token, "session_transport": "cookie"}),
        )
        .await;
    let (jar, body) = cookie_answer(res, PLAIN).await;
    let device = body["device_token"].as_str().expect("device token");
    json(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;

    // A recovery code from the now-known device opens the session at once, in cookie mode.
    let mfa = app.mfa_token("jbber").await;
    let res = app
        .http
        .post(app.url("/api/v1/sessions/recovery-code"))
        .header("X-Device-Token", device)
        .json(&json!({"mfa_token": mfa, "code": user.codes[1], "session_transport": "cookie"}))
        .send()
        .await
        .expect("request");
    let (jar, body) = cookie_answer(res, PLAIN).await;
    assert_eq!(body["recovery_codes_remaining"], 6, "{body}");
    json(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_sessions_csrf_token() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let jar = cookie_login(&app).await;
    let other = cookie_login(&app).await;
    assert_ne!(jar.csrf, other.csrf, "each session has its own CSRF token");
    let change = json!({"current_password": PASSWORD, "new_password": "velvet compass harbor 19"});

    for csrf in [
        None,
        Some("wrong"),
        Some(other.csrf.as_str()),
        Some(jar.access.as_str()),
    ] {
        let res = with_cookies(&app, Method::PUT, "/api/v1/account/password", &jar, csrf)
            .json(&change)
            .send()
            .await
            .expect("request");
        problem(res, 403, "csrf_failed").await;
    }
    // Refused writes changed nothing: the old password still logs in.
    app.login("jbber", PASSWORD).await;

    // A bearer call needs no CSRF token, even with the cookies beside it.
    let tokens = app.login("jbber", PASSWORD).await;
    let res = with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
        .bearer_auth(&tokens.access)
        .send()
        .await
        .expect("request");
    json(res, 200).await;

    // With its own token, the write goes through.
    let res = with_cookies(
        &app,
        Method::PUT,
        "/api/v1/account/password",
        &jar,
        Some(&jar.csrf),
    )
    .json(&change)
    .send()
    .await
    .expect("request");
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_cookie_session_refreshes_through_the_cookie() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let jar = cookie_login(&app).await;

    // Without the CSRF token: refused, and the refresh token is not spent.
    for csrf in [None, Some("wrong")] {
        let res = with_cookies(&app, Method::POST, "/api/v1/sessions/refresh", &jar, csrf)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        problem(res, 403, "csrf_failed").await;
    }
    let res = with_cookies(
        &app,
        Method::POST,
        "/api/v1/sessions/refresh",
        &jar,
        Some(&jar.csrf),
    )
    .json(&json!({}))
    .send()
    .await
    .expect("request");
    let (next, _) = cookie_answer(res, PLAIN).await;
    assert_ne!(next.refresh, jar.refresh);
    assert_eq!(next.csrf, jar.csrf, "the CSRF token belongs to the session");
    assert_eq!(session_id_of(&next.access), session_id_of(&jar.access));
    json(
        with_cookies(&app, Method::GET, "/api/v1/account", &next, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;

    // No body token and no cookie: the field is required.
    let body = problem(
        app.post("/api/v1/sessions/refresh", json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "refresh_token");
}

#[tokio::test]
async fn logout_of_a_cookie_session_clears_the_cookies() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let jar = cookie_login(&app).await;

    let res = with_cookies(&app, Method::DELETE, "/api/v1/sessions/current", &jar, None)
        .send()
        .await
        .expect("request");
    problem(res, 403, "csrf_failed").await;
    json(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        200,
    )
    .await;

    let res = with_cookies(
        &app,
        Method::DELETE,
        "/api/v1/sessions/current",
        &jar,
        Some(&jar.csrf),
    )
    .send()
    .await
    .expect("request");
    assert_eq!(res.status(), 204);
    let cleared = set_cookies(&res);
    for name in PLAIN {
        let cookie = cleared
            .get(name)
            .unwrap_or_else(|| panic!("{name} not cleared: {cleared:?}"));
        assert!(cookie.value.is_empty(), "{cookie:?}");
        assert!(cookie.has("max-age=0"), "{cookie:?}");
        assert!(cookie.has("path=/") && cookie.has("secure"), "{cookie:?}");
    }
    problem(
        with_cookies(&app, Method::GET, "/api/v1/account", &jar, None)
            .send()
            .await
            .expect("request"),
        401,
        "unauthorized",
    )
    .await;
    problem(
        with_cookies(
            &app,
            Method::POST,
            "/api/v1/sessions/refresh",
            &jar,
            Some(&jar.csrf),
        )
        .json(&json!({}))
        .send()
        .await
        .expect("request"),
        401,
        "invalid_refresh_token",
    )
    .await;

    // A bearer logout sets no cookies.
    let tokens = app.login("jbber", PASSWORD).await;
    let res = app
        .delete_auth("/api/v1/sessions/current", &tokens.access)
        .await;
    assert_eq!(res.status(), 204);
    assert!(set_cookies(&res).is_empty());
}

#[tokio::test]
async fn hostile_cookies_and_csrf_headers_are_refused_never_a_500() {
    let app = spawn_app().await;
    app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let jar = cookie_login(&app).await;
    let long = "a".repeat(5000);

    // Access cookies that are junk, over-long or of odd bytes: 401, never a 500.
    for cookie in [
        "ar_access=".to_string(),
        "ar_access=not-a-jwt".to_string(),
        format!("ar_access={long}"),
        "ar_access".to_string(),
        ";;;=;".to_string(),
    ] {
        let res = app
            .http
            .get(app.url("/api/v1/account"))
            .header("Cookie", cookie.clone())
            .send()
            .await
            .expect("request");
        problem(res, 401, "unauthorized").await;
    }
    let res = app
        .http
        .get(app.url("/api/v1/account"))
        .header(
            "Cookie",
            reqwest::header::HeaderValue::from_bytes(b"ar_access=\xff\xfe").expect("obs-text"),
        )
        .send()
        .await
        .expect("request");
    problem(res, 401, "unauthorized").await;

    // CSRF headers of odd bytes or length: 403, and nothing changes.
    for csrf in [
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").expect("obs-text"),
        reqwest::header::HeaderValue::from_str(&long).expect("long"),
        reqwest::header::HeaderValue::from_str(&format!("{} ", jar.csrf)).expect("padded"),
        reqwest::header::HeaderValue::from_str(&jar.csrf.to_uppercase()).expect("upper"),
    ] {
        let res = with_cookies(&app, Method::POST, "/api/v1/sessions/refresh", &jar, None)
            .header("X-CSRF-Token", csrf.clone())
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        // A padded header is trimmed like every header line; it is the right token then.
        if csrf.as_bytes().ends_with(b" ") {
            let (next, _) = cookie_answer(res, PLAIN).await;
            assert_eq!(next.csrf, jar.csrf);
            continue;
        }
        problem(res, 403, "csrf_failed").await;
    }

    // Junk refresh cookies: 401 (or, over-long, as if absent: 422), never a 500.
    for (refresh, status, code) in [
        ("ar_refresh=junk".to_string(), 401, "invalid_refresh_token"),
        (format!("ar_refresh={long}"), 422, "validation_failed"),
    ] {
        let res = app
            .http
            .post(app.url("/api/v1/sessions/refresh"))
            .header("Cookie", refresh)
            .header("X-CSRF-Token", jar.csrf.clone())
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        problem(res, status, code).await;
    }
}

const FRONTEND: &str = "https://app.example.test";

#[tokio::test]
async fn cors_allows_credentials_and_the_csrf_header_for_allowed_origins_only() {
    let app = spawn_app_with(|env| {
        env.insert("CORS_ALLOWED_ORIGINS".into(), FRONTEND.into());
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, app.url("/api/v1/sessions/refresh"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type, x-csrf-token",
            )
            .send()
    };
    let res = preflight(FRONTEND).await.expect("request");
    assert_eq!(res.status(), 200);
    let header = |res: &Response, name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_lowercase)
    };
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some(FRONTEND)
    );
    assert_eq!(
        header(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        header(&res, "access-control-allow-headers").is_some_and(|h| h.contains("x-csrf-token"))
    );

    let res = preflight("https://evil.example.test")
        .await
        .expect("request");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
    problem(res, 400, "malformed_request").await;

    // A simple request from elsewhere gets no CORS headers at all.
    let res = app
        .http
        .get(app.url("/health/live"))
        .header("Origin", "https://evil.example.test")
        .send()
        .await
        .expect("request");
    assert_eq!(header(&res, "access-control-allow-origin"), None);
    assert_eq!(header(&res, "access-control-allow-credentials"), None);
}

async fn refresh(app: &TestApp, token: &str) -> Response {
    app.post("/api/v1/sessions/refresh", json!({"refresh_token": token}))
        .await
}

fn pair(body: &Value) -> Tokens {
    Tokens {
        access: body["access_token"].as_str().expect("access").to_string(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_string(),
        device: None,
    }
}

#[tokio::test]
async fn inside_the_grace_a_reused_refresh_token_gets_a_new_pair_on_the_same_session() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let sid = session_id_of(&first.access);
    let tab_a = pair(&json(refresh(&app, &first.refresh).await, 200).await);

    // The second tab presents the same token 9 s later: a new pair, same session.
    app.clock.advance(chrono::Duration::seconds(9));
    let tab_b = pair(&json(refresh(&app, &first.refresh).await, 200).await);
    assert_ne!(tab_b.refresh, tab_a.refresh);
    assert_eq!(session_id_of(&tab_b.access), sid);
    assert_eq!(session_id_of(&tab_a.access), sid);
    let sessions = json(
        app.get_auth("/api/v1/account/sessions", &tab_b.access)
            .await,
        200,
    )
    .await;
    assert_eq!(
        sessions["items"].as_array().map(Vec::len),
        Some(1),
        "{sessions}"
    );
    // Both tabs go on.
    app.assert_session_alive(&tab_a).await;
    json(refresh(&app, &tab_a.refresh).await, 200).await;
    json(refresh(&app, &tab_b.refresh).await, 200).await;

    // The grace counts from the first exchange: 11 s after it, the same token revokes.
    app.clock.advance(chrono::Duration::seconds(2));
    problem(
        refresh(&app, &first.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    problem(
        app.get_auth("/api/v1/account", &tab_b.access).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn after_the_grace_a_reused_refresh_token_revokes_the_session() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = pair(&json(refresh(&app, &first.refresh).await, 200).await);
    app.clock.advance(chrono::Duration::seconds(11));
    problem(
        refresh(&app, &first.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    app.assert_session_dead(&second).await;
}

#[tokio::test]
async fn with_the_grace_off_any_reuse_revokes_the_session() {
    let app = spawn_app_with(|env| {
        env.insert("REFRESH_REUSE_GRACE".into(), "0s".into());
    })
    .await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let second = pair(&json(refresh(&app, &first.refresh).await, 200).await);
    problem(
        refresh(&app, &first.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    app.assert_session_dead(&second).await;
}

#[tokio::test]
async fn a_burst_of_parallel_refreshes_keeps_the_session_and_mints_few_pairs() {
    let app = spawn_app().await;
    let first = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let sid = session_id_of(&first.access);

    let answers =
        futures_util::future::join_all((0..16).map(|_| refresh(&app, &first.refresh))).await;
    let mut pairs = Vec::new();
    let mut refused = 0;
    for res in answers {
        match res.status().as_u16() {
            200 => pairs.push(pair(&json(res, 200).await)),
            401 => {
                problem(res, 401, "invalid_refresh_token").await;
                refused += 1;
            }
            other => panic!("unexpected {other}: {:?}", res.text().await),
        }
    }
    // One exchange and four grace pairs; the rest refused without harm.
    assert_eq!(pairs.len(), 5, "refused: {refused}");
    assert_eq!(refused, 11);
    for p in &pairs {
        assert_eq!(session_id_of(&p.access), sid);
        app.assert_session_alive(p).await;
    }
    let distinct: std::collections::HashSet<&str> =
        pairs.iter().map(|p| p.refresh.as_str()).collect();
    assert_eq!(distinct.len(), pairs.len());

    // After the grace, the same token still revokes the whole session.
    app.clock.advance(chrono::Duration::seconds(11));
    problem(
        refresh(&app, &first.refresh).await,
        401,
        "invalid_refresh_token",
    )
    .await;
    for p in &pairs {
        app.assert_session_dead(p).await;
    }
}

#[tokio::test]
async fn an_allowed_origin_may_preflight_every_method_the_document_uses() {
    // A cookie-mode frontend on another origin must be able to make every call the document
    // lists; PATCH (a passkey's rename) was once missing from the allowed methods.
    let app = spawn_app_with(|env| {
        env.insert("CORS_ALLOWED_ORIGINS".into(), FRONTEND.into());
    })
    .await;
    let doc = json(app.get("/api-docs/openapi.json").await, 200).await;
    let mut methods: HashMap<String, String> = HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                methods
                    .entry(method.to_uppercase())
                    .or_insert_with(|| path.replace(['{', '}'], ""));
            }
        }
    }
    assert!(methods.contains_key("PATCH"), "{methods:?}");
    for (method, path) in &methods {
        let res = app
            .http
            .request(Method::OPTIONS, app.url(path))
            .header("Origin", FRONTEND)
            .header("Access-Control-Request-Method", method.as_str())
            .header(
                "Access-Control-Request-Headers",
                "content-type, x-csrf-token",
            )
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "{method} {path}");
        let allowed = res
            .headers()
            .get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_uppercase();
        assert!(
            allowed.split(',').any(|m| m.trim() == method),
            "{method} {path}: {allowed}"
        );
    }
}

//! Cookie sessions (API.md, "Browser sessions without tokens in JavaScript"): the one place that
//! knows the cookies' names and attributes, which credential a request authenticates with, and
//! the CSRF rule for cookie-authenticated calls.
//!
//! - A login with `"session_transport": "cookie"` answers without `access_token` and
//!   `refresh_token`; they travel as `HttpOnly; Secure; SameSite=Strict` cookies (`Path=/`,
//!   `__Host-` prefixed when `PUBLIC_URL` is https), beside a readable CSRF cookie whose value
//!   the body also carries as `csrf_token` (a page on another host of the same site cannot read
//!   the API's cookies).
//! - A request authenticates with `Authorization: Bearer` when it sends one (only scripts set
//!   that header, so it needs no CSRF token), else with the access cookie. A cookie-authenticated
//!   call other than GET/HEAD/OPTIONS must send the session's CSRF token as `X-CSRF-Token`, or
//!   it is refused with 403 `csrf_failed` and changes nothing. `/sessions/refresh` reads the
//!   refresh cookie when the body has no `refresh_token`, under the same rule.
//! - Logout clears the cookies.
//!
//! What the CSRF token is (a keyed hash of the session id) is decided by
//! `services::sessions`; this module only says when it must be shown.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::edge::header_line;
use crate::api::problem::{ApiError, Code};
use crate::config::Config;
use crate::context::Ctx;
use crate::domain::SessionId;
use crate::services::sessions::{self, CsrfProof};

/// The request header that carries a cookie session's CSRF token.
pub const X_CSRF_TOKEN: header::HeaderName = header::HeaderName::from_static("x-csrf-token");

/// The cookies of a session, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieNames {
    /// The access token (HttpOnly).
    pub access: &'static str,
    /// The refresh token (HttpOnly).
    pub refresh: &'static str,
    /// The CSRF token (readable by the page's scripts).
    pub csrf: &'static str,
}

/// The names when `PUBLIC_URL` is https: the `__Host-` prefix makes browsers refuse them
/// unless they are `Secure`, `Path=/` and without `Domain`, so no other host (a sibling
/// subdomain) can plant or overwrite them.
pub const HOST_COOKIES: CookieNames = CookieNames {
    access: "__Host-ar_access",
    refresh: "__Host-ar_refresh",
    csrf: "__Host-ar_csrf",
};

/// The names over plain http (development): browsers accept `__Host-` cookies only from
/// secure origins.
pub const PLAIN_COOKIES: CookieNames = CookieNames {
    access: "ar_access",
    refresh: "ar_refresh",
    csrf: "ar_csrf",
};

/// The cookie names for this configuration.
pub fn names(config: &Config) -> CookieNames {
    if config.public_url.scheme() == "https" {
        HOST_COOKIES
    } else {
        PLAIN_COOKIES
    }
}

/// How a login's tokens travel to the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionTransport {
    /// In the body: the client sends `Authorization: Bearer` (the default).
    #[default]
    Bearer,
    /// As `HttpOnly` cookies: no token in the body or in JavaScript; writes send `X-CSRF-Token`.
    Cookie,
}

impl SessionTransport {
    /// The `session_transport` field of a login body: absent is `bearer`; anything but
    /// `bearer` or `cookie` is a 422.
    pub fn from_field(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("bearer") => Ok(Self::Bearer),
            Some("cookie") => Ok(Self::Cookie),
            Some(_) => Err(ApiError::field(
                "session_transport",
                "invalid",
                "must be `bearer` or `cookie`",
            )),
        }
    }
}

/// The credential a request authenticates with.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The access token, from the `Authorization` header or the access cookie.
    pub token: String,
    /// How it came.
    pub transport: SessionTransport,
    /// For a cookie-authenticated write: the `X-CSRF-Token` it sent, if any.
    csrf: Option<Option<String>>,
}

impl Credential {
    /// The request's credential: its bearer token, else its access cookie; `None` without
    /// either.
    pub fn of(req: &HttpRequest) -> Option<Self> {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        if let Some(token) = bearer {
            return Some(Self {
                token,
                transport: SessionTransport::Bearer,
                csrf: None,
            });
        }
        let names = names(&req.app_data::<web::Data<Ctx>>()?.config);
        let token = cookie_value(req, names.access)?;
        Some(Self {
            token,
            transport: SessionTransport::Cookie,
            csrf: writes(req.method()).then(|| presented_csrf(req)),
        })
    }

    /// Refuses a cookie-authenticated write without the CSRF token of `session_id` (403
    /// `csrf_failed`); anything else passes.
    pub fn check_csrf(&self, ctx: &Ctx, session_id: &SessionId) -> Result<(), ApiError> {
        match &self.csrf {
            Some(presented) if !sessions::csrf_matches(ctx, session_id, presented.as_deref()) => {
                Err(csrf_failed())
            }
            _ => Ok(()),
        }
    }
}

/// Whether a method changes something (everything but GET, HEAD and OPTIONS).
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn presented_csrf(req: &HttpRequest) -> Option<String> {
    header_line(req, X_CSRF_TOKEN.as_str())
        .filter(|v| v.len() <= crate::domain::limits::CSRF_TOKEN_MAX_BYTES)
        .map(str::to_owned)
}

fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 4096)
}

/// The 403 of a cookie-authenticated write without the session's CSRF token.
pub fn csrf_failed() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        Code::CsrfFailed,
        "A call authenticated by the session cookie must send the session's CSRF token \
         (the csrf_token of the login answer, also in the readable CSRF cookie) as X-CSRF-Token.",
    )
}

/// The refresh token a `POST /sessions/refresh` presents: the body's `refresh_token` when it
/// has one (bearer mode), else the refresh cookie with the CSRF token the request sent (cookie
/// mode), else a 422 `required`.
pub fn refresh_credential(
    req: &HttpRequest,
    config: &Config,
    from_body: Option<String>,
) -> Result<(String, CsrfProof, SessionTransport), ApiError> {
    if let Some(token) = from_body {
        return Ok((token, CsrfProof::NotNeeded, SessionTransport::Bearer));
    }
    match cookie_value(req, names(config).refresh) {
        Some(token) => Ok((
            token,
            CsrfProof::Presented(presented_csrf(req)),
            SessionTransport::Cookie,
        )),
        None => Err(ApiError::field(
            "refresh_token",
            "required",
            "is required (or the refresh cookie of a cookie session)",
        )),
    }
}

/// A session's tokens taken out of an answer body for cookie mode.
#[derive(Debug)]
pub struct SessionCookies {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The refresh token.
    pub refresh_token: String,
    /// The session's CSRF token.
    pub csrf_token: String,
}

/// An answer body that may open a session.
pub trait OpensSession {
    /// In cookie mode: removes the tokens from the body (putting the CSRF token in it instead)
    /// and returns them for the cookies; `None` when the answer opened no session (a second
    /// factor or an emailed confirmation is still needed).
    fn take_for_cookies(&mut self) -> Option<SessionCookies>;
}

/// The 200 answer of a call that may open (or refresh) a session: the body as it is in bearer
/// mode; in cookie mode, the body without the tokens and the session's cookies set.
pub fn session_answer<T: Serialize + OpensSession>(
    config: &Config,
    transport: SessionTransport,
    mut body: T,
) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    if transport == SessionTransport::Cookie
        && let Some(tokens) = body.take_for_cookies()
    {
        set_cookies(&mut res, config, &tokens);
    }
    res.json(body)
}

/// The 204 of a logout: the session's cookies cleared when the request authenticated with them.
pub fn logged_out(config: &Config, req: &HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    if Credential::of(req).is_some_and(|c| c.transport == SessionTransport::Cookie) {
        let names = names(config);
        for (name, http_only) in [
            (names.access, true),
            (names.refresh, true),
            (names.csrf, false),
        ] {
            res.cookie(cookie(name, String::new(), CookieDuration::ZERO, http_only));
        }
    }
    res.finish()
}

fn set_cookies(res: &mut HttpResponseBuilder, config: &Config, tokens: &SessionCookies) {
    let names = names(config);
    let access_age = seconds(tokens.expires_in);
    // The refresh and CSRF cookies live as long as a session can.
    let session_age = seconds(config.refresh_token_ttl.as_secs());
    res.cookie(cookie(
        names.access,
        tokens.access_token.clone(),
        access_age,
        true,
    ))
    .cookie(cookie(
        names.refresh,
        tokens.refresh_token.clone(),
        session_age,
        true,
    ))
    .cookie(cookie(
        names.csrf,
        tokens.csrf_token.clone(),
        session_age,
        false,
    ));
}

fn seconds(secs: u64) -> CookieDuration {
    CookieDuration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// Every session cookie: `Secure` (browsers treat `http://localhost` as secure, so development
/// works too), `SameSite=Strict` (never sent on a request another site starts), `Path=/`, no
/// `Domain` (this host only).
fn cookie(
    name: &'static str,
    value: String,
    max_age: CookieDuration,
    http_only: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .secure(true)
        .http_only(http_only)
        .same_site(SameSite::Strict)
        .max_age(max_age)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_transport_parses_the_two_values_and_refuses_others() {
        assert_eq!(
            SessionTransport::from_field(None).ok(),
            Some(SessionTransport::Bearer)
        );
        assert_eq!(
            SessionTransport::from_field(Some("cookie")).ok(),
            Some(SessionTransport::Cookie)
        );
        assert!(SessionTransport::from_field(Some("Cookie")).is_err());
    }

    #[test]
    fn cookies_are_secure_strict_and_host_wide() {
        let c = cookie(
            HOST_COOKIES.access,
            "v".into(),
            CookieDuration::seconds(900),
            true,
        );
        let text = c.to_string();
        for part in [
            "__Host-ar_access=v",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=900",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.contains("Domain"), "{text}");
    }

    #[test]
    fn only_writes_need_the_csrf_token() {
        assert!(!writes(&Method::GET));
        assert!(!writes(&Method::HEAD));
        assert!(writes(&Method::POST));
        assert!(writes(&Method::DELETE));
        assert!(writes(&Method::PUT));
        assert!(writes(&Method::PATCH));
    }
}

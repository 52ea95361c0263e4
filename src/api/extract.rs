//! Request extractors shared by handlers: the authenticated caller and where a request came
//! from.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use crate::api::problem::ApiError;
use crate::api::session_cookies::Credential;
use crate::context::Ctx;
use crate::domain::{Role, text};
use crate::services::sessions::{self, AuthError, Principal};
use crate::services::{ClientInfo, short_user_agent};

/// The caller, authenticated by an access token (bearer or cookie) whose session is live.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    /// A bearer access token, or the access cookie of a cookie session (whose writes must also
    /// carry its CSRF token: [`crate::api::session_cookies`]).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ctx = req.app_data::<web::Data<Ctx>>().cloned();
        let credential = Credential::of(req);
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let credential = credential.ok_or_else(ApiError::unauthorized)?;
            let p = sessions::authenticate(&ctx, &credential.token).await?;
            credential.check_csrf(&ctx, &p.session_id)?;
            Ok(Self(p))
        })
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized => ApiError::invalid_access_token(),
            AuthError::Failure(f) => f.into(),
        }
    }
}

/// The caller's access token (bearer or cookie), not yet checked: for a handler whose service
/// checks it in the same read as its answer (`GET /account`). It must then pass the session it
/// finds to [`Credential::check_csrf`], as [`Authenticated`] does; every other handler takes
/// [`Authenticated`].
#[derive(Debug)]
pub struct AccessToken(pub Credential);

impl FromRequest for AccessToken {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            Credential::of(req)
                .map(Self)
                .ok_or_else(ApiError::unauthorized),
        )
    }
}

/// The caller, who must have the `support` role (403 otherwise).
#[derive(Debug, Clone)]
pub struct SupportUser(pub Principal);

impl FromRequest for SupportUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let Authenticated(p) = auth.await?;
            if p.role == Role::Support {
                Ok(Self(p))
            } else {
                Err(ApiError::forbidden())
            }
        })
    }
}

/// The client's device token (`X-Device-Token`), when it sent a clean one: a header with
/// control characters, or none, is no device token.
#[derive(Debug, Clone)]
pub struct DeviceToken(pub Option<String>);

impl FromRequest for DeviceToken {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = crate::api::edge::header_line(req, "x-device-token")
            .filter(|t| t.len() <= crate::domain::limits::DEVICE_TOKEN_MAX_BYTES)
            .map(str::to_owned);
        std::future::ready(Ok(Self(token)))
    }
}

/// Where the request came from: the socket's peer, or the first address before the trusted
/// proxies in `X-Forwarded-For` when the peer is one of `TRUSTED_PROXIES`.
#[derive(Debug, Clone)]
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted: &[IpAddr] = req
            .app_data::<web::Data<Ctx>>()
            .map(|c| c.config.trusted_proxies.as_slice())
            .unwrap_or(&[]);
        let ip = client_ip_of(req, trusted).map(|ip| ip.to_string());
        // Recorded, never refused: control characters (a tab) become spaces (API.md).
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(text::strip_controls)
            .filter(|s| !s.is_empty())
            .map(|s| short_user_agent(&s));
        std::future::ready(Ok(Self(ClientInfo { ip, user_agent })))
    }
}

/// The client address of `req`: the peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not a trusted proxy, read over **every** header line (a
/// proxy that appends its own line would otherwise let the client choose the first one).
pub fn client_ip_of(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let lines: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    let forwarded = (!lines.is_empty()).then(|| lines.join(","));
    client_ip(
        req.peer_addr().map(|a| a.ip()),
        forwarded.as_deref(),
        trusted,
    )
}

/// The client address: walk `X-Forwarded-For` from the right while the hop is a trusted proxy.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let mut current = peer?;
    if !trusted.contains(&current) {
        return Some(current);
    }
    if let Some(list) = forwarded {
        for hop in list.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    current = ip;
                    if !trusted.contains(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &[proxy]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(Some(proxy), Some("1.2.3.4, 198.51.100.7"), &[proxy]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(proxy), Some("garbage"), &[proxy]),
            Some(proxy)
        );
    }
}

//! JWTs (jsonwebtoken): HS256 pinned; `iss`, `aud`, `iat`, `exp` and (when present) `nbf`
//! checked against the app's clock; every token carries a type, so an mfa token is never
//! accepted as an access token.
//! Access tokens carry the session id, which services check against the sessions table.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Authorises API calls for one session.
    Access,
    /// Proves the password step of a login; finished by a second factor.
    Mfa,
}

/// The claims of every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the service's public URL.
    pub iss: String,
    /// Audience: `account-recovery`.
    pub aud: String,
    /// The account id.
    pub sub: String,
    /// The session id (access tokens) or the challenge id (mfa tokens).
    pub sid: String,
    /// The token's type.
    pub typ: TokenType,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Not valid before (seconds since the epoch); this service issues none, but one that a
    /// token carries is honoured (RFC 7519 §4.1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// Why a token was refused. Callers answer all of them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Bad signature, algorithm, issuer, audience or shape.
    #[error("token is invalid")]
    Invalid,
    /// `exp` has passed (or `iat` or `nbf` lies in the future).
    #[error("token is expired")]
    Expired,
    /// A token of another type.
    #[error("token has the wrong type")]
    WrongType,
    /// Signing failed.
    #[error("token could not be signed")]
    Signing,
}

const AUDIENCE: &str = "account-recovery";
/// Clock skew tolerated between instances for `iat`.
const IAT_SKEW_SECS: i64 = 60;
/// Clock skew tolerated for `nbf` (issue 14: at most 60 s).
const NBF_LEEWAY_SECS: i64 = 60;

/// The signing keys and the checks every token passes.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .finish()
    }
}

impl JwtKeys {
    /// Keys from `JWT_SECRET`; the issuer is the public URL.
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // `exp` and `nbf` are checked against the app's clock below, not the system's, which
        // jsonwebtoken's `validate_exp` / `validate_nbf` would read.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer: issuer.to_owned(),
            validation,
        }
    }

    /// Signs a token of `typ` for `account` and `sid`, valid for `ttl` from `now`.
    pub fn issue(
        &self,
        typ: TokenType,
        account: &str,
        sid: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<String, JwtError> {
        let iat = now.timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: account.to_owned(),
            sid: sid.to_owned(),
            typ,
            iat,
            exp: iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| JwtError::Signing)
    }

    /// Checks a token's signature, issuer, audience, times and type.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenType,
        now: DateTime<Utc>,
    ) -> Result<Claims, JwtError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| JwtError::Invalid)?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp <= now
            || claims.iat > now + IAT_SKEW_SECS
            || claims.nbf.is_some_and(|nbf| nbf > now + NBF_LEEWAY_SECS)
        {
            return Err(JwtError::Expired);
        }
        if claims.typ != expected {
            return Err(JwtError::WrongType);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://issuer.test")
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = keys();
        let now = Utc::now();
        let t = k
            .issue(
                TokenType::Access,
                "acc",
                "sid",
                now,
                Duration::from_secs(900),
            )
            .expect("signs");
        let c = k.verify(&t, TokenType::Access, now).expect("valid");
        assert_eq!((c.sub.as_str(), c.sid.as_str()), ("acc", "sid"));
        let later = now + chrono::Duration::seconds(901);
        assert_eq!(
            k.verify(&t, TokenType::Access, later),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn type_issuer_audience_and_signature_are_enforced() {
        let k = keys();
        let now = Utc::now();
        let mfa = k
            .issue(TokenType::Mfa, "acc", "c", now, Duration::from_secs(300))
            .expect("signs");
        assert_eq!(
            k.verify(&mfa, TokenType::Access, now),
            Err(JwtError::WrongType)
        );
        let other_issuer = JwtKeys::new(b"0123456789abcdef0123456789abcdef", "http://evil.test");
        let t = other_issuer
            .issue(TokenType::Access, "acc", "s", now, Duration::from_secs(900))
            .expect("signs");
        assert_eq!(k.verify(&t, TokenType::Access, now), Err(JwtError::Invalid));
        let other_key = JwtKeys::new(b"ffffffffffffffffffffffffffffffff", "http://issuer.test");
        let t = other_key
            .issue(TokenType::Access, "acc", "s", now, Duration::from_secs(900))
            .expect("signs");
        assert_eq!(k.verify(&t, TokenType::Access, now), Err(JwtError::Invalid));
    }

    #[test]
    fn a_future_nbf_is_refused_beyond_60_seconds() {
        let k = keys();
        let now = Utc::now();
        let sign = |nbf: i64| {
            let claims = Claims {
                iss: "http://issuer.test".into(),
                aud: AUDIENCE.into(),
                sub: "acc".into(),
                sid: "s".into(),
                typ: TokenType::Access,
                iat: now.timestamp(),
                exp: now.timestamp() + 900,
                nbf: Some(nbf),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.encoding)
                .expect("signs")
        };
        let t = now.timestamp();
        assert!(k.verify(&sign(t - 5), TokenType::Access, now).is_ok());
        assert!(k.verify(&sign(t + 60), TokenType::Access, now).is_ok());
        assert_eq!(
            k.verify(&sign(t + 61), TokenType::Access, now),
            Err(JwtError::Expired)
        );
        assert_eq!(
            k.verify(&sign(t + 3600), TokenType::Access, now),
            Err(JwtError::Expired)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"iss":"http://issuer.test","aud":"account-recovery","sub":"a","sid":"s","typ":"access","iat":{now},"exp":{}}}"#,
            now + 900
        ));
        let token = format!("{header}.{claims}.");
        assert_eq!(
            k.verify(&token, TokenType::Access, Utc::now()),
            Err(JwtError::Invalid)
        );
    }
}

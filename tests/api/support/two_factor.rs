//! Two-factor helpers: an account with TOTP on, and the codes of the app's clock.

use account_recovery::clock::Clock as _;
use account_recovery::security::totp::TotpSecret;
use serde_json::json;

use super::{PASSWORD, TestApp, Tokens, json};

/// An account with 2FA on: its tokens, TOTP secret and first recovery codes.
pub struct TwoFactorUser {
    pub tokens: Tokens,
    pub secret: TotpSecret,
    pub codes: Vec<String>,
}

impl TestApp {
    pub fn totp_now(&self, secret: &TotpSecret, offset_secs: i64) -> String {
        secret
            .code_at(self.clock.now().timestamp() + offset_secs)
            .expect("code")
    }

    pub async fn mfa_token(&self, login: &str) -> String {
        let body = json(
            self.post(
                "/api/v1/sessions",
                json!({"login": login, "password": PASSWORD}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(body["status"], "mfa_required", "{body}");
        assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
        assert_eq!(body["expires_in"], 300);
        body["mfa_token"].as_str().expect("mfa token").to_string()
    }

    pub async fn with_two_factor(&self, username: &str, email: &str) -> TwoFactorUser {
        let tokens = self.verified_user(username, email, PASSWORD).await;
        let enrollment = json(
            self.post_auth(
                "/api/v1/account/totp",
                &tokens.access,
                json!({"password": PASSWORD}),
            )
            .await,
            201,
        )
        .await;
        let secret = TotpSecret::from_base32(enrollment["secret"].as_str().expect("secret"))
            .expect("base32 secret");
        // Confirm with the code of the previous step, keeping the current one for the tests.
        let code = self.totp_now(&secret, -30);
        let confirmed = json(
            self.post_auth(
                "/api/v1/account/totp/confirm",
                &tokens.access,
                json!({"code": code}),
            )
            .await,
            200,
        )
        .await;
        let codes = confirmed["recovery_codes"]
            .as_array()
            .expect("codes")
            .iter()
            .map(|c| c.as_str().expect("code").to_string())
            .collect();
        TwoFactorUser {
            tokens,
            secret,
            codes,
        }
    }
}

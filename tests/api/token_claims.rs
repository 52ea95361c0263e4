//! Access tokens carrying claims the service never issues, signed with the real key: a future
//! `nbf` is refused beyond 60 s of leeway (issue 14; RFC 7519 §4.1.5).

use account_recovery::clock::Clock as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::support::{PASSWORD, TestApp, json, problem, spawn_app};

/// The access token's claims with `nbf` added, signed again with the app's `JWT_SECRET`.
fn with_nbf(app: &TestApp, access: &str, nbf: i64) -> String {
    let payload = access.split('.').nth(1).expect("a JWT has three parts");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
            .expect("claims JSON");
    claims["nbf"] = nbf.into();
    let secret = app.env.get("JWT_SECRET").expect("the test secret");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signs")
}

#[tokio::test]
async fn a_token_not_valid_before_the_future_is_refused() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;
    let now = app.clock.now().timestamp();

    // The re-signed token is good as such: a past `nbf`, and one within the leeway, pass.
    for nbf in [now - 10, now + 30] {
        json(
            app.get_auth("/api/v1/account", &with_nbf(&app, &tokens.access, nbf))
                .await,
            200,
        )
        .await;
    }
    for nbf in [now + 90, now + 3600] {
        problem(
            app.get_auth("/api/v1/account", &with_nbf(&app, &tokens.access, nbf))
                .await,
            401,
            "unauthorized",
        )
        .await;
    }
    // Time moves through the app's clock: once it passes, the token works.
    let future = with_nbf(&app, &tokens.access, now + 600);
    app.clock.advance(chrono::Duration::minutes(10));
    json(app.get_auth("/api/v1/account", &future).await, 200).await;
}

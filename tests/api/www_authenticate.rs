//! Every 401 carries `WWW-Authenticate: Bearer` (RFC 6750), with `error="invalid_token"` when
//! an access token was sent and refused.

use serde_json::json;

use crate::support::{PASSWORD, spawn_app};

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no WWW-Authenticate on a {}", res.status()))
        .to_string()
}

#[tokio::test]
async fn every_kind_of_401_names_the_bearer_scheme() {
    let app = spawn_app().await;
    let tokens = app.verified_user("jbber", "jb@example.com", PASSWORD).await;

    // No token, or another scheme: the plain challenge.
    let res = app.get("/api/v1/account").await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), "Bearer");
    let res = app
        .http
        .get(app.url("/api/v1/account"))
        .header("Authorization", format!("Basic {}", tokens.access))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), "Bearer");

    // A token that was sent and refused: garbage, then a revoked one.
    let res = app.get_auth("/api/v1/account", "not.a.token").await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), r#"Bearer error="invalid_token""#);
    let res = app
        .delete_auth("/api/v1/sessions/current", &tokens.access)
        .await;
    assert_eq!(res.status(), 204);
    let res = app.get_auth("/api/v1/account", &tokens.access).await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), r#"Bearer error="invalid_token""#);

    // The 401s of the login steps and of refresh name the scheme too.
    for (path, body) in [
        (
            "/api/v1/sessions",
            json!({"login": "jbber", "password": "wrong password"}),
        ),
        (
            "/api/v1/sessions/refresh",
            json!({"refresh_token": tokens.refresh}),
        ),
        (
            "/api/v1/sessions/totp",
            json!({"mfa_token": "forged", "code": "123456"}),
        ),
        (
            "/api/v1/sessions/recovery-code",
            json!({"mfa_token": "forged", "code": "k3vq-9x2m-hh4t-a7pe-w0cd"}),
        ),
    ] {
        let res = app.post(path, body).await;
        assert_eq!(res.status(), 401, "{path}");
        assert_eq!(challenge(&res), "Bearer", "{path}");
    }
    // Other errors carry no challenge.
    let res = app
        .post("/api/v1/sessions", json!({"login": "", "password": "x"}))
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.headers().get("www-authenticate").is_none());
}

//! The OpenAPI 3.1 document: collected from the routes, completed with the API's description,
//! tags and the bearer security scheme. `account-recovery openapi` prints it and
//! `openapi/openapi.json` is that output, committed; a test fails when the two drift.

use actix_web::App;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt as _;

use crate::api::problem::{Code, FieldError, Problem};

/// Where the document is served.
pub const OPENAPI_JSON_PATH: &str = "/api-docs/openapi.json";

/// The static part of the document; paths come from [`crate::api::routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "account-recovery",
        description = "Gets locked-out people back into their accounts safely: sessions with \
two-factor authentication, recovery codes, password reset by email, and account-recovery \
requests reviewed by support.\n\nEvery error is an RFC 9457 problem document \
(`application/problem+json`) with a stable `code`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    components(schemas(Problem, FieldError, Code)),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Registration, email verification and the account itself."),
        (name = "sessions", description = "Login (with a second factor when enabled), refresh and logout."),
        (name = "two_factor", description = "TOTP and recovery codes."),
        (name = "password_resets", description = "Forgotten password, by email."),
        (name = "recovery_requests", description = "Requests from owners who lost every factor."),
        (name = "support", description = "Review of recovery requests and the audit log (role `support`)."),
        (name = "operations", description = "Health checks."),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (JWT access tokens from `POST /api/v1/sessions`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from POST /api/v1/sessions (15 minutes).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document, as served and as committed.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::api::routes)
        .split_for_parts();
    doc
}

/// The document as pretty JSON with a final newline, exactly as `openapi/openapi.json` holds it.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

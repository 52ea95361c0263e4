//! The OpenAPI 3.1 document: collected from the routes, completed with the API's description,
//! tags and the bearer security scheme. `account-recovery openapi` prints it and
//! `openapi/openapi.json` is that output, committed; a test fails when the two drift.

use actix_web::App;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
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
        (name = "passkeys", description = "Passkeys (WebAuthn) as a second factor."),
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
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::api::routes)
        .split_for_parts();
    add_general_responses(&mut doc);
    doc
}

/// The answers any operation can give whatever its handler says, as reusable responses:
/// (component name, status, description).
const GENERAL_RESPONSES: [(&str, &str, &str); 7] = [
    (
        "MalformedRequest",
        "400",
        "The body is not JSON of the expected shape, or a query value is of the wrong type \
         (`malformed_request`).",
    ),
    (
        "Unauthorized",
        "401",
        "No valid access token: missing, malformed, expired or revoked (`unauthorized`).",
    ),
    (
        "PayloadTooLarge",
        "413",
        "The body is larger than 64 KiB (`payload_too_large`).",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body is not sent as `application/json` (`unsupported_media_type`).",
    ),
    (
        "ValidationFailed",
        "422",
        "A field is missing or not valid (`validation_failed`, one entry per field in `errors`).",
    ),
    (
        "InternalError",
        "500",
        "Something broke on the server (`internal_error`, no details).",
    ),
    (
        "ServiceUnavailable",
        "503",
        "The database does not answer (`service_unavailable`); try again shortly.",
    ),
];

/// Documents the general answers on every operation that can give them, so clients (and
/// schemathesis) find each status they may see: every API operation can answer 500 and 503,
/// one with a body 400, 413, 415 and 422, one that needs a token 401. A response an operation
/// documents itself is kept.
fn add_general_responses(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, _, description) in GENERAL_RESPONSES {
        components.responses.insert(
            name.to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        super::problem::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            ),
        );
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let wanted = general_statuses(operation);
            for (name, status, _) in GENERAL_RESPONSES {
                if wanted.contains(&status) {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

fn general_statuses(operation: &Operation) -> Vec<&'static str> {
    let mut statuses = vec!["500", "503"];
    if operation.request_body.is_some() {
        statuses.extend(["400", "413", "415", "422"]);
    }
    let has_query = operation.parameters.iter().flatten().any(
        |p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Query),
    );
    if has_query {
        // A query value of the wrong type (`per_page=ten`).
        statuses.push("400");
    }
    if operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty())
    {
        statuses.push("401");
    }
    statuses
}

/// The document as pretty JSON with a final newline, exactly as `openapi/openapi.json` holds it.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

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
    add_cookie_sessions(&mut doc);
    add_general_responses(&mut doc);
    doc
}

/// The operations whose 200 opens (or refreshes) a session, and so sets the session's cookies
/// in cookie mode. `create_session_with_webauthn` is listed for when passkey logins exist.
pub const SESSION_OPENING_OPERATIONS: [&str; 6] = [
    "create_session",
    "create_session_with_totp",
    "create_session_with_recovery_code",
    "create_session_with_webauthn",
    "confirm_session",
    "refresh_session",
];

/// Documents cookie sessions ([`crate::api::session_cookies`]) on the collected operations, in
/// one place rather than on every handler: the `cookie` and `refresh_cookie` security schemes,
/// `cookie` beside `bearer` on every authenticated operation, the `X-CSRF-Token` header and its
/// 403 `csrf_failed` on the authenticated writes, and `Set-Cookie` on the answers that set or
/// clear the cookies.
fn add_cookie_sessions(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement};
    use utoipa::openapi::{HeaderBuilder, ObjectBuilder, Required, Type};

    use crate::api::session_cookies::{HOST_COOKIES, PLAIN_COOKIES, X_CSRF_TOKEN};

    let plain_note = format!(
        "Over plain http (development) the names drop the `__Host-` prefix (`{}`, `{}`, `{}`).",
        PLAIN_COOKIES.access, PLAIN_COOKIES.refresh, PLAIN_COOKIES.csrf
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            HOST_COOKIES.access.to_owned(),
            format!(
                "The access token as an HttpOnly cookie, set by a login with \
                 `\"session_transport\": \"cookie\"`. Calls other than GET must also send \
                 `X-CSRF-Token`. {plain_note}"
            ),
        ))),
    );
    components.add_security_scheme(
        "refresh_cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            HOST_COOKIES.refresh.to_owned(),
            format!(
                "The refresh token as an HttpOnly cookie (cookie sessions), read by \
                 POST /api/v1/sessions/refresh when the body has no `refresh_token`; the call \
                 must send `X-CSRF-Token`. {plain_note}"
            ),
        ))),
    );
    components.parameters.insert(
        "CsrfToken".to_owned(),
        RefOr::T(
            ParameterBuilder::new()
                .name(X_CSRF_TOKEN.as_str())
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(format!(
                    "Required when the call is authenticated by the session cookie: the \
                     `csrf_token` of the login answer (also in the readable `{}` cookie). \
                     Without it, or with another session's, the answer is 403 `csrf_failed`.",
                    HOST_COOKIES.csrf
                )))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(256)),
                ))
                .build(),
        ),
    );
    components.responses.insert(
        "CsrfFailed".to_owned(),
        RefOr::T(
            ResponseBuilder::new()
                .description(
                    "Authenticated by the session cookie without the session's `X-CSRF-Token` \
                     (`csrf_failed`); nothing changed.",
                )
                .content(
                    super::problem::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        ),
    );
    let set_cookie = |description: &str| {
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(description.to_owned()))
                .build(),
        )
    };
    let sets = format!(
        "Cookie mode only (`session_transport: cookie`, or a refresh through the cookie): \
         `{}` and `{}` (HttpOnly) and `{}` (readable), each `Secure; SameSite=Strict; Path=/` \
         with a `Max-Age`. {plain_note}",
        HOST_COOKIES.access, HOST_COOKIES.refresh, HOST_COOKIES.csrf
    );
    let clears = "When the call was authenticated by the session cookie: the session's cookies, \
                  emptied with `Max-Age=0`.";
    let csrf_parameter = || RefOr::Ref(Ref::new("#/components/parameters/CsrfToken"));

    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/") {
            continue;
        }
        let operations = [
            (&mut item.get, false),
            (&mut item.put, true),
            (&mut item.post, true),
            (&mut item.delete, true),
            (&mut item.patch, true),
        ];
        for (operation, writes) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let id = operation.operation_id.clone().unwrap_or_default();
            let bearer = operation.security.as_ref().is_some_and(|all| {
                all.iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v.get("bearer").is_some()))
            });
            if bearer {
                if let Some(all) = operation.security.as_mut() {
                    all.push(SecurityRequirement::new("cookie", Vec::<String>::new()));
                }
                if writes {
                    operation
                        .parameters
                        .get_or_insert_with(Vec::new)
                        .push(csrf_parameter());
                    operation
                        .responses
                        .responses
                        .entry("403".to_owned())
                        .and_modify(|r| {
                            if let RefOr::T(r) = r {
                                r.description.push_str(
                                    " With the session cookie and no (or a wrong) \
                                     `X-CSRF-Token`: `csrf_failed`.",
                                );
                            }
                        })
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("CsrfFailed")));
                }
            }
            if id == "refresh_session" {
                // Public with a body token, or authenticated by the refresh cookie.
                operation.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("refresh_cookie", Vec::<String>::new()),
                ]);
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(csrf_parameter());
                operation
                    .responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::from_response_name("CsrfFailed")));
            }
            let (status, description) = if SESSION_OPENING_OPERATIONS.contains(&id.as_str()) {
                ("200", sets.as_str())
            } else if id == "delete_current_session" {
                ("204", clears)
            } else {
                continue;
            };
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(status) {
                response
                    .headers
                    .insert("Set-Cookie".to_owned(), set_cookie(description));
            }
        }
    }
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

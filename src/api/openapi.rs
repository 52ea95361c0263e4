//! The OpenAPI 3.1 document: collected from the routes, completed with the API's description,
//! tags and the bearer security scheme. `account-recovery openapi` prints it and
//! `openapi/openapi.json` is that output, committed; a test fails when the two drift.

use actix_web::App;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
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
(`application/problem+json`) with a stable `code`; each error response below lists the codes \
it can carry. Every input field states its rules (lengths, patterns, formats), the same \
constants the server checks.\n\nThe guide for client authors — conventions, every error code \
and when it comes, the recovery-request state machine, the flows a frontend implements and how \
to generate a client — is the file `docs/api.md` in the service's source repository, beside \
this document's committed copy `openapi/openapi.json`. It is not served over HTTP, so it is \
named here rather than linked: a relative link would resolve against this server and miss.",
        contact(name = "account-recovery maintainers", url = "https://example.org/account-recovery"),
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    servers((url = "/", description = "The server that serves this document; every path starts at its root.")),
    components(schemas(Problem, FieldError, Code)),
    modifiers(&SecuritySchemes),
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

/// The security schemes: `bearer` (JWT access tokens from `POST /api/v1/sessions`) and
/// `tracking_token` (the `X-Tracking-Token` of a recovery request). Every operation names its
/// scheme, or `security()` when it is public on purpose.
struct SecuritySchemes;

/// The name of the bearer scheme in the document.
pub const BEARER: &str = "bearer";

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
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
        components.add_security_scheme(
            "tracking_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Tracking-Token",
                "The tracking token of a recovery request: answered once by \
                 POST /api/v1/recovery-requests and mailed to the contact email. A missing or \
                 wrong one is a 404, like an unknown request id.",
            ))),
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
    add_parameter_rules(&mut doc);
    doc
}

/// States the rules of the path ids and headers in one place rather than on every handler
/// (`params(…)` takes only literal numbers, not the constants of `domain/limits.rs`): every
/// path parameter is an id (a UUID, [`crate::domain::ids`]; anything else is a 404), and the
/// `X-Device-Token` and `X-Tracking-Token` headers have the length the server reads.
fn add_parameter_rules(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;

    use crate::api::rules;

    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else {
                    continue;
                };
                let schema = match (&parameter.parameter_in, parameter.name.as_str()) {
                    (ParameterIn::Path, _) => rules::id(&format!(
                        "{} A UUID; anything else names nothing (a 404).",
                        parameter.description.as_deref().unwrap_or("The id.")
                    )),
                    (ParameterIn::Header, "X-Device-Token") => rules::device_token(),
                    (ParameterIn::Header, "X-Tracking-Token") => rules::tracking_token(),
                    _ => continue,
                };
                parameter.schema = Some(schema);
            }
        }
    }
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
                .schema(Some(crate::api::rules::csrf_token()))
                .build(),
        ),
    );
    let mut csrf_failed = ResponseBuilder::new()
        .description(
            "Authenticated by the session cookie without the session's `X-CSRF-Token` \
             (`csrf_failed`); nothing changed.",
        )
        .build();
    declare_codes(&mut csrf_failed, "403", &[Code::CsrfFailed]);
    components
        .responses
        .insert("CsrfFailed".to_owned(), RefOr::T(csrf_failed));
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
/// (component name, status, code, description).
const GENERAL_RESPONSES: [(&str, &str, Code, &str); 8] = [
    (
        "MalformedRequest",
        "400",
        Code::MalformedRequest,
        "The body is not JSON of the expected shape, or a query value is of the wrong type \
         (`malformed_request`).",
    ),
    (
        "Unauthorized",
        "401",
        Code::Unauthorized,
        "No valid access token: missing, malformed, expired or revoked (`unauthorized`).",
    ),
    (
        "PayloadTooLarge",
        "413",
        Code::PayloadTooLarge,
        "The body is larger than 64 KiB (`payload_too_large`).",
    ),
    (
        "UnsupportedMediaType",
        "415",
        Code::UnsupportedMediaType,
        "The body is not sent as `application/json` (`unsupported_media_type`).",
    ),
    (
        "ValidationFailed",
        "422",
        Code::ValidationFailed,
        "A field is missing or not valid (`validation_failed`, one entry per field in `errors`).",
    ),
    (
        "TooManyConnections",
        "429",
        Code::RateLimited,
        "Too many open connections from this client address (`MAX_CONNECTIONS_PER_IP`): the \
         connection is answered at once and closed (`rate_limited`).",
    ),
    (
        "InternalError",
        "500",
        Code::InternalError,
        "Something broke on the server (`internal_error`, no details).",
    ),
    (
        "ServiceUnavailable",
        "503",
        Code::ServiceUnavailable,
        "The database does not answer (`service_unavailable`); try again shortly.",
    ),
];

/// Documents the general answers on every operation that can give them, so clients (and
/// schemathesis) find each status they may see: every operation can answer 429 (the
/// connection cap of `api/slow_clients.rs`), every API operation 500 and 503,
/// one with a body 400, 413, 415 and 422, one that needs a bearer token 401. A response an
/// operation documents itself is kept, and the general code is added to the codes it lists.
/// Then every error response gets its `code` enum and one example per code
/// ([`declare_codes`]), and every 429 and 503 its `Retry-After` header.
fn add_general_responses(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (name, status, code, description) in GENERAL_RESPONSES {
        let mut response = ResponseBuilder::new().description(description).build();
        declare_codes(&mut response, status, &[code]);
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            // The connection cap answers before any route: every operation can see it.
            let wanted = if api {
                general_statuses(operation)
            } else {
                vec!["429"]
            };
            for (name, status, code, _) in GENERAL_RESPONSES {
                if !wanted.contains(&status) {
                    continue;
                }
                match operation.responses.responses.get_mut(status) {
                    None => {
                        operation
                            .responses
                            .responses
                            .insert(status.to_owned(), RefOr::Ref(Ref::from_response_name(name)));
                    }
                    Some(RefOr::T(own)) => {
                        let mut codes = codes_named_in(&own.description, status);
                        if !codes.contains(&code) {
                            codes.push(code);
                        }
                        declare_codes(own, status, &codes);
                    }
                    Some(RefOr::Ref(_)) => {}
                }
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if is_error && !response.content.is_empty() && !has_code_enum(response) {
                        let codes = codes_named_in(&response.description, status);
                        declare_codes(response, status, &codes);
                    }
                }
            }
        }
    }
}

fn general_statuses(operation: &Operation) -> Vec<&'static str> {
    let mut statuses = vec!["429", "500", "503"];
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
    let bearer = operation
        .security
        .iter()
        .flatten()
        .filter_map(|r| serde_json::to_value(r).ok())
        .any(|r| r.get(BEARER).is_some());
    if bearer {
        statuses.push("401");
    }
    statuses
}

/// The code a bare status answers when its description names none (`404` is `not_found`).
fn code_of_status(status: &str) -> Option<Code> {
    Some(match status {
        "400" => Code::MalformedRequest,
        "401" => Code::Unauthorized,
        "403" => Code::Forbidden,
        "404" => Code::NotFound,
        "405" => Code::MethodNotAllowed,
        "408" => Code::RequestTimeout,
        "413" => Code::PayloadTooLarge,
        "415" => Code::UnsupportedMediaType,
        "422" => Code::ValidationFailed,
        "429" => Code::RateLimited,
        "500" => Code::InternalError,
        "503" => Code::ServiceUnavailable,
        _ => return None,
    })
}

/// The problem codes a response's description names in backticks (`` `invalid_token` ``), in
/// order; the status's own code when it names none. A 422 is always `validation_failed` (the
/// codes its description names are field-error codes) and a 429 always `rate_limited`.
pub fn codes_named_in(description: &str, status: &str) -> Vec<Code> {
    if status == "429" {
        return code_of_status(status).into_iter().collect();
    }
    // A 422 is `validation_failed` (its field codes are named in the description too, but they
    // are not problem codes) unless the description names another problem code beside it, as
    // a passkey registration's `invalid_webauthn_response`.
    let mut codes: Vec<Code> = if status == "422" {
        code_of_status(status).into_iter().collect()
    } else {
        Vec::new()
    };
    for word in description.split('`').skip(1).step_by(2) {
        if let Some(code) = Code::ALL.iter().find(|c| c.as_str() == word)
            && !codes.contains(code)
        {
            codes.push(*code);
        }
    }
    if codes.is_empty() {
        codes.extend(code_of_status(status));
    }
    codes
}

fn has_code_enum(response: &Response) -> bool {
    response
        .content
        .get(super::problem::PROBLEM_JSON)
        .and_then(|c| match c {
            RefOr::T(c) => c.schema.as_ref(),
            RefOr::Ref(_) => None,
        })
        .is_some_and(|s| matches!(s, RefOr::T(Schema::AllOf(_))))
}

/// Makes `response` a problem+json answer whose `code` is one of `codes`: the schema narrows
/// `Problem.code` to an `enum` of them, and there is one example per code (an example the
/// handler wrote for a code is kept). A 429 or 503 also declares `Retry-After`.
fn declare_codes(response: &mut Response, status: &str, codes: &[Code]) {
    let status_number: u16 = status.parse().unwrap_or(500);
    let written: Option<serde_json::Value> = response
        .content
        .get(super::problem::PROBLEM_JSON)
        .and_then(|c| match c {
            RefOr::T(c) => c.example.clone(),
            RefOr::Ref(_) => None,
        });
    let narrowed = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(
            ObjectBuilder::new().property(
                "code",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes.iter().map(|c| c.as_str()))),
            ),
        )
        .build();
    let mut content = ContentBuilder::new().schema(Some(Schema::AllOf(narrowed)));
    let examples = codes.iter().map(|code| {
        let value = match &written {
            Some(v) if v.get("code").and_then(|c| c.as_str()) == Some(code.as_str()) => v.clone(),
            _ => serde_json::json!({
                "type": format!("urn:account-recovery:problem:{}", code.as_str()),
                "title": code.title(),
                "status": status_number,
                "detail": response.description.clone(),
                "code": code.as_str(),
            }),
        };
        (
            code.as_str().to_owned(),
            RefOr::T(
                ExampleBuilder::new()
                    .summary(code.title())
                    .value(Some(value))
                    .build(),
            ),
        )
    });
    content = content.examples_from_iter(examples.collect::<Vec<_>>());
    response.content.insert(
        super::problem::PROBLEM_JSON.to_owned(),
        RefOr::T(content.build()),
    );
    if matches!(status, "429" | "503") {
        response.headers.insert(
            "Retry-After".to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                            .minimum(Some(1)),
                    ))
                    .description(Some("Seconds to wait before trying again."))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline, exactly as `openapi/openapi.json` holds it.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    //! The conventions of "Documenting an endpoint" (docs/ARCHITECTURE.md), checked over the
    //! whole document so that a new endpoint cannot skip one.

    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(super::document()).expect("document as JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    out.push((format!("{} {path}", method.to_uppercase()), op));
                }
            }
        }
        out
    }

    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v["$ref"].as_str() {
            Some(r) => r
                .strip_prefix("#/")
                .map(|p| p.split('/').fold(doc, |acc, k| &acc[k]))
                .unwrap_or(v),
            None => v,
        }
    }

    #[test]
    fn every_operation_says_who_may_call_it_and_what_it_does() {
        let doc = doc();
        for (name, op) in operations(&doc) {
            assert!(
                op["security"].is_array(),
                "{name}: name its scheme, or `security()` when public on purpose"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: summary"
            );
            assert!(
                op["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: a description (a second doc-comment paragraph)"
            );
        }
    }

    #[test]
    fn every_error_response_lists_its_codes_and_every_429_says_when_to_retry() {
        let doc = doc();
        for (name, op) in operations(&doc) {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                let response = resolve(&doc, response);
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let content = &response["content"]["application/problem+json"];
                let codes = &content["schema"]["allOf"][1]["properties"]["code"]["enum"];
                let codes = codes
                    .as_array()
                    .unwrap_or_else(|| panic!("{name} {status}: codes"));
                assert!(!codes.is_empty(), "{name} {status}");
                for code in codes {
                    let code = code.as_str().unwrap_or_default();
                    assert!(
                        content["examples"][code].is_object(),
                        "{name} {status}: an example for {code}"
                    );
                }
                if status == "429" || status == "503" {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{name} {status}: Retry-After"
                    );
                }
            }
        }
    }

    #[test]
    fn inputs_state_their_rules_and_required_ones_are_not_nullable() {
        let doc = doc();
        for (name, op) in operations(&doc) {
            let Some(schema) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            else {
                continue;
            };
            let schema = resolve(&doc, &Value::Object(schema.clone())).clone();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                let property = resolve(&doc, property);
                assert!(
                    property["description"].is_string(),
                    "{name} {field}: its rule (`schema_with = rules::…`)"
                );
                if required.contains(&field.as_str()) {
                    assert!(
                        !property["type"].is_array(),
                        "{name} {field}: required, so not nullable"
                    );
                }
            }
        }
    }

    /// Inputs whose strings carry no `maxLength`, each with why: the WebAuthn JSON passes
    /// through to webauthn-rs, which checks it; only the 64 KiB body limit bounds it.
    const NO_MAX_LENGTH: [&str; 2] = [
        "#/components/schemas/RegistrationResponseJson",
        "#/components/schemas/AuthenticationResponseJson",
    ];

    /// Every string of `schema` at any depth (refs followed, [`NO_MAX_LENGTH`] skipped) that
    /// states no `maxLength`, `enum` or `const`. A binary upload is bounded by its own limit
    /// (`ATTACHMENT_MAX_BYTES`), not a length.
    fn unbounded_strings(doc: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
        if let Some(r) = schema["$ref"].as_str() {
            if !NO_MAX_LENGTH.contains(&r) {
                unbounded_strings(doc, resolve(doc, schema), at, out);
            }
            return;
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for part in schema[key].as_array().into_iter().flatten() {
                unbounded_strings(doc, part, at, out);
            }
        }
        let is_string = match &schema["type"] {
            Value::String(t) => t == "string",
            Value::Array(ts) => ts.iter().any(|t| t == "string"),
            _ => false,
        };
        let bounded = ["maxLength", "enum", "const"]
            .iter()
            .any(|k| !schema[*k].is_null());
        if is_string && !bounded && schema["format"] != "binary" {
            out.push(at.to_owned());
        }
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            unbounded_strings(doc, property, &format!("{at}.{field}"), out);
        }
        if !schema["items"].is_null() {
            unbounded_strings(doc, &schema["items"], &format!("{at}[]"), out);
        }
    }

    #[test]
    fn every_string_input_states_its_longest_value() {
        let doc = doc();
        let mut unbounded = Vec::new();
        let mut inputs = 0;
        for (name, op) in operations(&doc) {
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let parameter = resolve(&doc, parameter);
                let at = format!("{name} {}", parameter["name"].as_str().unwrap_or("?"));
                unbounded_strings(&doc, &parameter["schema"], &at, &mut unbounded);
                inputs += 1;
            }
            for (media, content) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let at = format!("{name} {media}");
                unbounded_strings(&doc, &content["schema"], &at, &mut unbounded);
                inputs += 1;
            }
        }
        assert!(inputs > 50, "the walk found the inputs ({inputs})");
        assert!(
            unbounded.is_empty(),
            "string inputs without maxLength (state the constant the server checks, through \
             api/rules.rs): {unbounded:#?}"
        );
    }

    #[test]
    fn path_ids_are_uuids() {
        let doc = doc();
        for (name, op) in operations(&doc) {
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let parameter = resolve(&doc, parameter);
                if parameter["in"] == "path" {
                    assert_eq!(parameter["schema"]["format"], "uuid", "{name}");
                }
            }
        }
    }

    #[test]
    fn numbers_are_int32_except_sequence_ids() {
        fn walk(v: &Value, path: &str) {
            match v {
                Value::Object(map) => {
                    if map.get("format").and_then(Value::as_str) == Some("int64") {
                        assert!(
                            path.ends_with("/id"),
                            "{path}: int32 for counts and seconds"
                        );
                    }
                    for (k, v) in map {
                        walk(v, &format!("{path}/{k}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, path)),
                _ => {}
            }
        }
        walk(&doc(), "");
    }
}

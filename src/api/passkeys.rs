//! Passkeys (WebAuthn) as a second factor: registration, the owner's list, rename and removal
//! (`/account/passkeys…`), and the passkey step of a login (`/sessions/webauthn…`).
//!
//! The WebAuthn JSON shapes (options, registration and authentication responses) pass through
//! as JSON: webauthn-rs reads and writes them in the service. The schemas below document them
//! for generated clients; every binary field is base64url without padding, as WebAuthn Level 3's
//! `toJSON()` / `parseCreationOptionsFromJSON()` use.

use actix_web::http::StatusCode;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::api::edge::{Body, PathId, TextFields};
use crate::api::extract::{Authenticated, Client, DeviceToken};
use crate::api::problem::{ApiError, Code, FieldError, Problem};
use crate::api::rules;
use crate::api::session_cookies::{self, SessionTransport};
use crate::api::sessions::SecondStepResponse;
use crate::context::Ctx;
use crate::domain::{Passkey, PasskeyId, PasskeyNameError};
use crate::services::passkeys::{self, PasskeyError};

// ---- WebAuthn JSON shapes (documentation of what passes through) ----

/// The relying party.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelyingPartyJson {
    /// The RP id (`WEBAUTHN_RP_ID`).
    pub id: String,
    /// The service's name.
    pub name: String,
}

/// The account as the authenticator stores it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserEntityJson {
    /// The user handle: base64url of the account id's 16 UUID bytes.
    pub id: String,
    /// The username.
    pub name: String,
    /// The username.
    pub display_name: String,
}

/// An acceptable key type.
#[derive(Debug, Serialize, ToSchema)]
pub struct PubKeyCredParamJson {
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A COSE algorithm: -7 (ES256), -257 (RS256), …
    #[schema(value_type = i32)]
    pub alg: i64,
}

/// A credential named in `excludeCredentials` or `allowCredentials`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialDescriptorJson {
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The credential id, base64url.
    pub id: String,
    /// `usb`, `nfc`, `ble`, `internal`, `hybrid`, when known.
    pub transports: Option<Vec<String>>,
}

/// What kind of authenticator is asked for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelectionJson {
    /// `discouraged`: allowed, not required.
    pub resident_key: Option<String>,
    /// `false`.
    pub require_resident_key: bool,
    /// `preferred`.
    pub user_verification: String,
    /// Absent: platform and roaming authenticators alike.
    pub authenticator_attachment: Option<String>,
}

/// `PublicKeyCredentialCreationOptionsJSON` (WebAuthn Level 3): pass to
/// `PublicKeyCredential.parseCreationOptionsFromJSON()` or decode the base64url fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptionsJson {
    /// The relying party.
    pub rp: RelyingPartyJson,
    /// The account.
    pub user: UserEntityJson,
    /// base64url, at least 16 random bytes.
    pub challenge: String,
    /// Acceptable key types, preferred first.
    pub pub_key_cred_params: Vec<PubKeyCredParamJson>,
    /// Milliseconds the ceremony may take.
    #[schema(value_type = Option<u32>)]
    pub timeout: Option<u64>,
    /// The account's passkeys: an authenticator holding one is not registered again.
    pub exclude_credentials: Option<Vec<CredentialDescriptorJson>>,
    /// The authenticator asked for.
    pub authenticator_selection: Option<AuthenticatorSelectionJson>,
    /// Always `none`.
    pub attestation: Option<String>,
    /// Client extensions asked for (`credProps`, `credProtect`, `uvm`, …).
    #[schema(value_type = Object)]
    pub extensions: Option<serde_json::Value>,
}

/// The `options` of a registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreationOptionsEnvelope {
    /// The creation options.
    #[serde(rename = "publicKey")]
    pub public_key: CreationOptionsJson,
}

/// `PublicKeyCredentialRequestOptionsJSON` (WebAuthn Level 3): pass to
/// `PublicKeyCredential.parseRequestOptionsFromJSON()` or decode the base64url fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptionsJson {
    /// base64url, at least 16 random bytes.
    pub challenge: String,
    /// Milliseconds the ceremony may take.
    #[schema(value_type = Option<u32>)]
    pub timeout: Option<u64>,
    /// The RP id.
    pub rp_id: String,
    /// The account's passkeys.
    pub allow_credentials: Vec<CredentialDescriptorJson>,
    /// `preferred`.
    pub user_verification: String,
    /// Client extensions asked for.
    #[schema(value_type = Option<Object>, required = false)]
    pub extensions: Option<serde_json::Value>,
}

/// The `options` of a passkey login.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOptionsEnvelope {
    /// The request options.
    #[serde(rename = "publicKey")]
    pub public_key: RequestOptionsJson,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AttestationResponseJson {
    /// base64url of the client data JSON.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url of the CBOR attestation object (`fmt: "none"` expected).
    #[serde(rename = "attestationObject")]
    pub attestation_object: String,
    /// The transports the authenticator supports (`getTransports()`), if known.
    pub transports: Option<Vec<String>>,
}

/// `RegistrationResponseJSON` (`PublicKeyCredential.toJSON()` after `create()`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    /// The credential id, base64url.
    pub id: String,
    /// The credential id, base64url.
    pub raw_id: String,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The authenticator's answer.
    pub response: AttestationResponseJson,
    /// `getClientExtensionResults()`.
    #[schema(value_type = Object)]
    pub client_extension_results: Option<serde_json::Value>,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AssertionResponseJson {
    /// base64url of the client data JSON.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// base64url of the authenticator data.
    #[serde(rename = "authenticatorData")]
    pub authenticator_data: String,
    /// base64url of the signature.
    pub signature: String,
    /// base64url of the user handle, if the authenticator returned one.
    #[serde(rename = "userHandle")]
    pub user_handle: Option<String>,
}

/// `AuthenticationResponseJSON` (`PublicKeyCredential.toJSON()` after `get()`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// The credential id, base64url.
    pub id: String,
    /// The credential id, base64url.
    pub raw_id: String,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The authenticator's answer.
    pub response: AssertionResponseJson,
    /// `getClientExtensionResults()`.
    #[schema(value_type = Object)]
    pub client_extension_results: Option<serde_json::Value>,
}

// ---- Bodies and answers ----

/// Starting a registration.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"password": "orbit lantern mosaic 42"}))]
pub struct RegistrationOptionsBody {
    /// The account's password.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
}

impl TextFields for RegistrationOptionsBody {}

/// A registration's options.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"registration_id": "3c9a4f1e-8b2d-4e6f-9a1c-2b3d4e5f6a7b", "options": {"publicKey": {
    "rp": {"id": "example.com", "name": "account-recovery"},
    "user": {"id": "fxwqPg1LTl-KmxwtPk9aaw", "name": "jbber", "displayName": "jbber"},
    "challenge": "q8dVxI3YwT3nI1v0pQ8m7A9kZ2cH4fL6sR1tU5wX0yE",
    "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
    "timeout": 300000, "excludeCredentials": [],
    "authenticatorSelection": {"residentKey": "discouraged", "requireResidentKey": false, "userVerification": "preferred"},
    "attestation": "none", "extensions": {"credProps": true}}}}))]
pub struct RegistrationOptionsResponse {
    /// Send back with the authenticator's response within 5 minutes; works once.
    pub registration_id: String,
    /// `{publicKey: PublicKeyCredentialCreationOptionsJSON}` for `navigator.credentials.create()`.
    #[schema(value_type = CreationOptionsEnvelope)]
    pub options: serde_json::Value,
}

/// Finishing a registration.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"registration_id": "3c9a4f1e-8b2d-4e6f-9a1c-2b3d4e5f6a7b", "name": "YubiKey 5C",
    "credential": {"id": "hX8Qm0bq", "rawId": "hX8Qm0bq", "type": "public-key",
        "response": {"clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIn0", "attestationObject": "o2NmbXRkbm9uZQ", "transports": ["usb"]},
        "clientExtensionResults": {}}}))]
pub struct RegisterPasskeyBody {
    /// The `registration_id` of the options.
    #[schema(schema_with = rules::registration_id)]
    pub registration_id: String,
    /// A name for the passkey.
    #[schema(schema_with = rules::passkey_name)]
    #[validate(custom(function = rules::check_passkey_name))]
    pub name: String,
    /// The authenticator's `RegistrationResponseJSON`.
    #[schema(value_type = RegistrationResponseJson)]
    pub credential: serde_json::Value,
}

impl TextFields for RegisterPasskeyBody {}

/// A passkey (never key material).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", "name": "YubiKey 5C",
    "created_at": "2026-12-01T10:00:00Z", "last_used_at": "2026-12-02T08:30:00Z",
    "backup_eligible": false, "backed_up": false}))]
pub struct PasskeyResponse {
    /// Id (for rename and removal).
    pub id: String,
    /// The owner's name for it.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last finished a login.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The authenticator may sync it (a multi-device passkey).
    pub backup_eligible: bool,
    /// It is synced (backed up), as of its last use.
    pub backed_up: bool,
}

impl From<Passkey> for PasskeyResponse {
    fn from(p: Passkey) -> Self {
        Self {
            id: p.id.into_string(),
            name: p.name.as_str().to_owned(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            backup_eligible: p.backup_eligible,
            backed_up: p.backed_up,
        }
    }
}

/// A registered passkey; the recovery codes only when it turned 2FA on.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"passkey": {"id": "9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6", "name": "YubiKey 5C",
    "created_at": "2026-12-01T10:00:00Z", "last_used_at": null, "backup_eligible": false, "backed_up": false},
    "recovery_codes": ["k3vq-9x2m-hh4t-a7pe-w0cd"], "generated_at": "2026-12-01T10:00:00Z"}))]
pub struct RegisteredPasskeyResponse {
    /// The passkey.
    pub passkey: PasskeyResponse,
    /// Only when this passkey turned 2FA on: the first recovery codes, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
    /// When those codes were generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generated_at: Option<DateTime<Utc>>,
}

/// The caller's passkeys.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    pub items: Vec<PasskeyResponse>,
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"name": "Backup key (drawer)"}))]
pub struct RenamePasskeyBody {
    /// The new name.
    #[schema(schema_with = rules::passkey_name)]
    #[validate(custom(function = rules::check_passkey_name))]
    pub name: String,
}

impl TextFields for RenamePasskeyBody {}

/// Removing a passkey.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"password": "orbit lantern mosaic 42", "code": "k3vq-9x2m-hh4t-a7pe-w0cd"}))]
pub struct RemovePasskeyBody {
    /// The account's password.
    #[schema(schema_with = rules::password)]
    #[validate(custom(function = rules::check_password))]
    pub password: String,
    /// Only when this is the account's last second factor: an unused recovery code (consumed).
    #[schema(schema_with = rules::second_factor_code, required = false)]
    #[validate(custom(function = rules::check_second_factor_code))]
    pub code: Option<String>,
}

impl TextFields for RemovePasskeyBody {}

/// Asking for a passkey login's options.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"mfa_token": "eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJtZmEifQ.c2lnbmF0dXJl"}))]
pub struct WebauthnOptionsBody {
    /// The `mfa_token` of the password step.
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub mfa_token: String,
}

impl TextFields for WebauthnOptionsBody {}

/// A passkey login's options.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"options": {"publicKey": {"challenge": "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTA",
    "timeout": 300000, "rpId": "example.com",
    "allowCredentials": [{"type": "public-key", "id": "hX8Qm0bq", "transports": ["usb"]}],
    "userVerification": "preferred"}}}))]
pub struct WebauthnOptionsResponse {
    /// `{publicKey: PublicKeyCredentialRequestOptionsJSON}` for `navigator.credentials.get()`.
    #[schema(value_type = RequestOptionsEnvelope)]
    pub options: serde_json::Value,
}

/// Finishing a login with a passkey.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[schema(example = json!({"mfa_token": "eyJhbGciOiJIUzI1NiJ9.eyJ0eXAiOiJtZmEifQ.c2lnbmF0dXJl",
    "credential": {"id": "hX8Qm0bq", "rawId": "hX8Qm0bq", "type": "public-key",
        "response": {"clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0", "authenticatorData": "SZYN5YgO",
            "signature": "MEUCIQ", "userHandle": null}, "clientExtensionResults": {}}}))]
pub struct WebauthnLoginBody {
    /// The `mfa_token` of the password step (the one the options were asked with).
    #[schema(schema_with = rules::token)]
    #[validate(custom(function = rules::check_token))]
    pub mfa_token: String,
    /// The authenticator's `AuthenticationResponseJSON`.
    #[schema(value_type = AuthenticationResponseJson)]
    pub credential: serde_json::Value,
    /// `bearer` (default) or `cookie`: how the opened session's tokens travel.
    #[schema(value_type = SessionTransport, required = false)]
    #[serde(default)]
    pub session_transport: Option<String>,
}

impl TextFields for WebauthnLoginBody {}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::InvalidPassword => ApiError::new(
                StatusCode::FORBIDDEN,
                Code::InvalidPassword,
                "The password is wrong.",
            ),
            PasskeyError::RateLimited { retry_after_secs } => ApiError::rate_limited(
                retry_after_secs,
                "Too many failed attempts. Wait before trying again.",
            ),
            PasskeyError::InvalidName(n) => {
                let code = match n {
                    PasskeyNameError::Empty => "required",
                    PasskeyNameError::TooLong => "too_long",
                    PasskeyNameError::ControlCharacter => "control_character",
                };
                ApiError::field("name", code, n.to_string())
            }
            PasskeyError::Missing(field) => ApiError::field(field, "required", "is required"),
            PasskeyError::InvalidResponse(why) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidWebauthnResponse,
                format!(
                    "The passkey could not be registered ({why}). Start again with new options."
                ),
            ),
            PasskeyError::NotFound => ApiError::not_found("You have no passkey with that id."),
            // An authenticated call: a field error, so frontends keep the user signed in.
            PasskeyError::InvalidCode(r) => ApiError::validation(vec![FieldError::new(
                "code",
                crate::api::two_factor::refusal_code(&r).as_str(),
                crate::api::two_factor::refusal_detail(&r),
            )]),
            PasskeyError::Failure(f) => f.into(),
        }
    }
}

fn no_store() -> CacheControl {
    CacheControl(vec![CacheDirective::NoStore])
}

fn passkey_id(id: &PathId) -> Result<PasskeyId, ApiError> {
    PasskeyId::parse(id).ok_or_else(|| ApiError::not_found("You have no passkey with that id."))
}

/// Starts registering a passkey: answers the creation options for
/// `navigator.credentials.create()` and the `registration_id` to finish with.
///
/// Needs the password (in the re-authentication budget). The options ask for attestation
/// `none`, user verification `preferred`, resident keys allowed but not required, and exclude
/// the account's passkeys. The ceremony lives 5 minutes, server-side, bound to the account.
#[utoipa::path(
    tag = "passkeys",
    operation_id = "start_passkey_registration",
    security(("bearer" = [])),
    request_body = RegistrationOptionsBody,
    responses(
        (status = 200, description = "The options and the registration id.", body = RegistrationOptionsResponse),
        (status = 403, description = "Wrong password (`invalid_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The password is missing (`validation_failed`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords on this account (`rate_limited`, `Retry-After`): the re-authentication budget.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/passkeys/registration-options")]
pub async fn start_passkey_registration(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<RegistrationOptionsBody>,
) -> Result<HttpResponse, ApiError> {
    let started =
        passkeys::registration_options(&ctx, &who, body.validated()?.password, client).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(RegistrationOptionsResponse {
            registration_id: started.registration_id.into_string(),
            options: started.options,
        }))
}

/// Finishes registering a passkey with the authenticator's `RegistrationResponseJSON`.
///
/// The registration id works once. When this passkey turns 2FA on (the account had no second
/// factor), the first recovery codes are in the answer, shown this once; a passkey added beside
/// TOTP or another passkey leaves the codes alone. A notice is mailed.
#[utoipa::path(
    tag = "passkeys",
    operation_id = "register_passkey",
    security(("bearer" = [])),
    request_body = RegisterPasskeyBody,
    responses(
        (status = 201, description = "Registered.", body = RegisteredPasskeyResponse),
        (status = 422, description = "`invalid_webauthn_response`: the registration id is unknown, used, expired or another account's; the response does not verify (origin, RP id, challenge, flags); or the credential is registered already. `validation_failed` for a bad name.", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_webauthn_response", "title": "Passkey registration not accepted",
                "status": 422, "detail": "The passkey could not be registered (response refused). Start again with new options.",
                "code": "invalid_webauthn_response"})),
        (status = 400, description = "Unreadable JSON (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/passkeys")]
pub async fn register_passkey(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    body: Body<RegisterPasskeyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let added = passkeys::register(
        &ctx,
        &who,
        &body.registration_id,
        &body.name,
        body.credential,
        client,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(no_store())
        .json(RegisteredPasskeyResponse {
            passkey: added.passkey.into(),
            generated_at: added.codes.as_ref().map(|c| c.generated_at),
            recovery_codes: added.codes.map(|c| c.codes),
        }))
}

/// Lists the caller's passkeys.
///
/// Names, times and backup flags, never key material; oldest first (in the order they were
/// added).
#[utoipa::path(
    tag = "passkeys",
    operation_id = "list_passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account's passkeys.", body = PasskeyList),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/account/passkeys")]
pub async fn list_passkeys(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = passkeys::list(&ctx, &who)
        .await?
        .into_iter()
        .map(PasskeyResponse::from)
        .collect();
    Ok(HttpResponse::Ok().json(PasskeyList { items }))
}

/// Renames one of the caller's passkeys.
///
/// The name is for people only (1–64 characters, one line); another account's passkey id is a
/// 404.
#[utoipa::path(
    tag = "passkeys",
    operation_id = "rename_passkey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id.")),
    request_body = RenamePasskeyBody,
    responses(
        (status = 200, description = "Renamed.", body = PasskeyResponse),
        (status = 404, description = "No passkey of yours has that id.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The name is empty, longer than 64 characters or has a control character.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/account/passkeys/{id}")]
pub async fn rename_passkey(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    id: PathId,
    body: Body<RenamePasskeyBody>,
) -> Result<HttpResponse, ApiError> {
    let id = passkey_id(&id)?;
    let body = body.validated()?;
    let passkey = passkeys::rename(&ctx, &who, &id, &body.name, client).await?;
    Ok(HttpResponse::Ok().json(PasskeyResponse::from(passkey)))
}

/// Removes one of the caller's passkeys (a POST: many clients drop a DELETE's body).
///
/// Needs the password; when it is the account's last second factor, also an unused recovery
/// code (consumed), and 2FA then goes off with its recovery codes. Other sessions are revoked
/// and a notice is mailed.
#[utoipa::path(
    tag = "passkeys",
    operation_id = "remove_passkey",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id.")),
    request_body = RemovePasskeyBody,
    responses(
        (status = 204, description = "Removed."),
        (status = 403, description = "Wrong password (`invalid_password`).", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No passkey of yours has that id.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The last second factor needs `code` (`required`), or the recovery code was refused (field `code`: `invalid_recovery_code`, `recovery_code_already_used`, `recovery_code_superseded`).", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts (`rate_limited`, `Retry-After`).", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/account/passkeys/{id}/remove")]
pub async fn remove_passkey(
    ctx: web::Data<Ctx>,
    Authenticated(who): Authenticated,
    Client(client): Client,
    id: PathId,
    body: Body<RemovePasskeyBody>,
) -> Result<HttpResponse, ApiError> {
    let id = passkey_id(&id)?;
    let body = body.validated()?;
    passkeys::remove(&ctx, &who, &id, body.password, body.code, client).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Answers the request options of a passkey login, for `navigator.credentials.get()`.
///
/// Bound to the mfa token's login: an assertion made for these options finishes only that login
/// (newer options of the same login replace older ones).
#[utoipa::path(
    tag = "sessions",
    operation_id = "start_webauthn_session",
    security(),
    request_body = WebauthnOptionsBody,
    responses(
        (status = 200, description = "The request options.", body = WebauthnOptionsResponse),
        (status = 401, description = "`mfa_token_invalid` (unknown, used or expired), or `invalid_webauthn_assertion` when the account has no passkey.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The mfa token is missing.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/webauthn/options")]
pub async fn start_webauthn_session(
    ctx: web::Data<Ctx>,
    body: Body<WebauthnOptionsBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let options = passkeys::login_options(&ctx, &body.mfa_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(WebauthnOptionsResponse { options }))
}

/// Finishes a login with a passkey's `AuthenticationResponseJSON`.
///
/// Refusals (wrong origin or RP id, a challenge of another login, a replay, a bad signature, a
/// credential the account does not have, a sign counter that did not move forward) are one
/// answer, `invalid_webauthn_assertion`, and count in the second-factor budget shared with TOTP
/// and recovery codes. A counter that went backwards is also audited
/// (`passkey.counter_regressed`).
#[utoipa::path(
    tag = "sessions",
    operation_id = "create_session_with_webauthn",
    security(),
    request_body = WebauthnLoginBody,
    params(("X-Device-Token" = Option<String>, Header, description = "The device token a previous login answered, if any.")),
    responses(
        (status = 200, description = "Authenticated (with a `device_token` for a new device), or, under `NEW_DEVICE_CONFIRMATION=all` from a device the account does not know, `email_confirmation_required`.", body = SecondStepResponse),
        (status = 401, description = "`invalid_webauthn_assertion`, or `mfa_token_invalid` (unknown, used or expired).", body = Problem,
            content_type = "application/problem+json",
            example = json!({"type": "urn:account-recovery:problem:invalid_webauthn_assertion", "title": "Passkey not accepted",
                "status": 401, "detail": "The passkey's answer was not accepted. Try again with a passkey registered to this account, or use another second factor.",
                "code": "invalid_webauthn_assertion"})),
        (status = 400, description = "Unreadable JSON (`malformed_request`).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed second-factor attempts (`rate_limited`, `Retry-After`).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/sessions/webauthn")]
pub async fn create_session_with_webauthn(
    ctx: web::Data<Ctx>,
    Client(client): Client,
    DeviceToken(device): DeviceToken,
    body: Body<WebauthnLoginBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.validated()?;
    let transport = SessionTransport::from_field(body.session_transport.as_deref())?;
    let step = passkeys::login(&ctx, &body.mfa_token, body.credential, client, device).await?;
    Ok(session_cookies::session_answer(
        &ctx.config,
        transport,
        SecondStepResponse::from(step),
    ))
}

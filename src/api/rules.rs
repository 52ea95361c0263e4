//! The input rules as the OpenAPI document states them, built from [`crate::domain::limits`],
//! the constants the domain parsers and the request validators check. A body field names its
//! rule with `#[schema(schema_with = rules::username)]` (a query parameter with
//! `#[param(schema_with = …)]`); the rule's description is written here, from the same
//! constants, so the number a person reads is the number the server checks.
//!
//! A rule here may only be as strict as the server: a value the schema accepts must pass the
//! server's validation except for the server-only rules listed in `docs/api.md` (breached
//! passwords, look-alikes, mixed scripts, what trimming and NFKC change). The agreement table
//! in `.ci/contract/` checks both directions against the running server.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use validator::ValidationError;

use crate::domain::limits::{
    CSRF_TOKEN_MAX_BYTES, DEVICE_TOKEN_MAX_BYTES, EMAIL_MAX_BYTES, EVENT_TYPE_MAX_CHARS, ID_CHARS,
    LOGIN_MAX_BYTES, PAGE_MIN, PASSKEY_NAME_MAX_CHARS, PASSWORD_IN_USE_MAX_CHARS,
    PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, PER_PAGE_DEFAULT, PER_PAGE_MAX, PER_PAGE_MIN,
    REASON_MIN_CHARS, SECOND_FACTOR_CODE_MAX_CHARS, TEXT_MAX_CHARS, TOKEN_MAX_CHARS,
    USERNAME_MAX_CHARS, USERNAME_MIN_CHARS,
};
use crate::domain::text;
use crate::domain::{EmailAddress, Login, NewPassword, PasskeyName, RequestId, Username};

/// The characters a new username may hold, as far as a portable pattern can say it: no space
/// and no ASCII punctuation but `-`, `.` and `_`. The server's rule is stricter (letters,
/// digits and combining marks of one script, as UTS #39 allows them in identifiers); the
/// pattern avoids `\p{…}`, which JSON Schema validators and Python's `re` do not all read.
pub const USERNAME_PATTERN: &str = r"^[^\s!-,/:-@\[-^`{-~]+$";

fn text(min: Option<usize>, max: usize, description: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(min)
        .max_length(Some(max))
        .description(Some(description))
}

fn done(object: ObjectBuilder) -> RefOr<Schema> {
    RefOr::T(Schema::Object(Object::from(object)))
}

/// A new username (registration).
pub fn username() -> RefOr<Schema> {
    done(
        text(
            Some(USERNAME_MIN_CHARS),
            USERNAME_MAX_CHARS,
            format!(
                "{USERNAME_MIN_CHARS}–{USERNAME_MAX_CHARS} letters or digits of one script, \
                 `-`, `_` or `.`; unique ignoring case and look-alikes. Surrounding spaces are \
                 trimmed and the text is NFKC-normalised before the check."
            ),
        )
        .pattern(Some(USERNAME_PATTERN))
        .examples(["jbber"]),
    )
}

/// The username named in a recovery request (any account's name as its owner remembers it).
pub fn request_username() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            USERNAME_MAX_CHARS,
            format!(
                "The account's username, 1–{USERNAME_MAX_CHARS} characters (trimmed). An \
                 unknown name is accepted and answered like a known one."
            ),
        )
        .examples(["jbber"]),
    )
}

/// An email address.
pub fn email() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            EMAIL_MAX_BYTES,
            format!(
                "An email address, at most {EMAIL_MAX_BYTES} bytes; compared ignoring case. The \
                 local part and each label of the domain must each be of one script."
            ),
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .examples(["jbber@example.com"]),
    )
}

/// Where a recovery requester can be reached.
pub fn contact_email() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            EMAIL_MAX_BYTES,
            format!(
                "Where we can reach you (the tracking link goes there): an email address, at \
                 most {EMAIL_MAX_BYTES} bytes."
            ),
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .examples(["jb.new@example.org"]),
    )
}

/// A new password (registration, change, reset, recovery completion).
pub fn new_password() -> RefOr<Schema> {
    done(
        text(
            Some(PASSWORD_MIN_CHARS),
            PASSWORD_MAX_CHARS,
            format!(
                "{PASSWORD_MIN_CHARS}–{PASSWORD_MAX_CHARS} characters, no composition rules. \
                 The server also refuses (each with its field-error code) a password that \
                 contains the username, the email or the service's name \
                 (`contains_personal_info`, `contains_service_name`), is a common breached \
                 password (`breached`), is on the operator's list (`blocklisted`), or is \
                 otherwise easy to guess (`weak`)."
            ),
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .examples(["orbit lantern mosaic 42"]),
    )
}

/// A password in use (login, re-authentication): any text up to a sane bound, checked against
/// the hash.
pub fn password() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(PASSWORD_IN_USE_MAX_CHARS))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .description(Some(format!(
                "The account's password. A wrong one is a 401 or 403, never a 422; one longer \
                 than {PASSWORD_IN_USE_MAX_CHARS} characters (no password can be) is a 422 \
                 `too_long`."
            )))
            .examples(["orbit lantern mosaic 42"]),
    )
}

/// What a person types to log in.
pub fn login() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            LOGIN_MAX_BYTES,
            format!("Username or email address (case does not matter), 1–{LOGIN_MAX_BYTES} bytes."),
        )
        .examples(["jbber"]),
    )
}

/// The reason of a recovery request.
pub fn reason() -> RefOr<Schema> {
    done(
        text(
            Some(REASON_MIN_CHARS),
            TEXT_MAX_CHARS,
            format!(
                "What happened, {REASON_MIN_CHARS} to {TEXT_MAX_CHARS} characters (trimmed). Tab \
                 and line breaks are allowed."
            ),
        )
        .examples([
            "I lost my phone with the authenticator app and never saved my recovery codes.",
        ]),
    )
}

/// A required free text: a message, a note, a denial reason.
pub fn free_text() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            TEXT_MAX_CHARS,
            format!(
                "1 to {TEXT_MAX_CHARS} characters (trimmed; blank counts as missing). Tab and \
                 line breaks are allowed."
            ),
        )
        .examples(["My last release was mypkg 2.3.1 on 2026-10-02."]),
    )
}

/// An optional free text: an approval's comment or justification.
pub fn optional_free_text() -> RefOr<Schema> {
    done(
        text(
            None,
            TEXT_MAX_CHARS,
            format!(
                "At most {TEXT_MAX_CHARS} characters (trimmed; blank counts as absent). Tab and \
                 line breaks are allowed."
            ),
        )
        .examples(["Ownership proven through the account email."]),
    )
}

/// A second-factor code as typed: an authenticator code or a recovery code.
pub fn second_factor_code() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(SECOND_FACTOR_CODE_MAX_CHARS))
            .description(Some(format!(
                "Six digits from the authenticator app, or a recovery code like \
                 `k3vq-9x2m-hh4t-a7pe-w0cd` (case, dashes and spaces do not matter). Blank is a \
                 422 `required` and more than {SECOND_FACTOR_CODE_MAX_CHARS} characters a 422 \
                 `too_long`; any other wrong code, whatever its shape, is refused as a wrong \
                 code."
            )))
            .examples(["492039"]),
    )
}

/// A token from an emailed link or an earlier answer: opaque, checked only against the store.
pub fn token() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(TOKEN_MAX_CHARS))
            .description(Some(format!(
                "An opaque token as received (link parameter or earlier answer). An unknown, \
                 used or expired one is refused with its own code, never a 422; one longer than \
                 {TOKEN_MAX_CHARS} characters (no token is) is a 422 `too_long`."
            )))
            .examples(["Zq0V8oQy3m1lKf7c2Xr9bT4sN6uHdA5wEjPiGkYvLnM"]),
    )
}

/// The name an owner gives a passkey.
pub fn passkey_name() -> RefOr<Schema> {
    done(
        text(
            Some(1),
            PASSKEY_NAME_MAX_CHARS,
            format!(
                "A name for people only, 1 to {PASSKEY_NAME_MAX_CHARS} characters after \
                 trimming, one line."
            ),
        )
        .examples(["YubiKey 5C"]),
    )
}

/// An id: a UUID as this service writes them (path ids, id filters, ceremony ids).
pub fn id(description: &str) -> RefOr<Schema> {
    done(
        text(Some(ID_CHARS), ID_CHARS, description.to_owned())
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .examples(["9d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"]),
    )
}

/// A header that carries a token; `max` is what the server reads, a longer one counts as
/// missing.
pub fn header_token(max: usize, description: String) -> RefOr<Schema> {
    done(text(Some(1), max, description))
}

/// The `X-Device-Token` header.
pub fn device_token() -> RefOr<Schema> {
    header_token(
        DEVICE_TOKEN_MAX_BYTES,
        format!(
            "The device token a previous login answered; at most {DEVICE_TOKEN_MAX_BYTES} \
             bytes (a longer one is ignored, as if absent)."
        ),
    )
}

/// The `X-Tracking-Token` header.
pub fn tracking_token() -> RefOr<Schema> {
    header_token(
        TOKEN_MAX_CHARS,
        format!(
            "The request's tracking token, at most {TOKEN_MAX_CHARS} characters; a missing, \
             longer or wrong one is a 404."
        ),
    )
}

/// The `X-CSRF-Token` header.
pub fn csrf_token() -> RefOr<Schema> {
    header_token(
        CSRF_TOKEN_MAX_BYTES,
        format!(
            "The session's `csrf_token`, at most {CSRF_TOKEN_MAX_BYTES} bytes (a longer one \
             counts as missing)."
        ),
    )
}

/// The username filter of the support queue.
pub fn username_filter() -> RefOr<Schema> {
    done(text(
        None,
        USERNAME_MAX_CHARS,
        format!(
            "Only requests naming this username, as submitted, ignoring case; at most \
             {USERNAME_MAX_CHARS} characters (trimmed; blank is no filter)."
        ),
    ))
}

/// An id filter of the audit log.
pub fn id_filter() -> RefOr<Schema> {
    done(
        text(
            None,
            ID_CHARS,
            "An id (a UUID); blank is no filter, anything else a 422 `invalid`.".to_owned(),
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
    )
}

/// The event type filter of the audit log.
pub fn event_type_filter() -> RefOr<Schema> {
    done(
        text(
            None,
            EVENT_TYPE_MAX_CHARS,
            format!(
                "Only this event type, e.g. `recovery_request.approved`; at most \
                 {EVENT_TYPE_MAX_CHARS} characters (blank is no filter)."
            ),
        )
        .examples(["recovery_request.approved"]),
    )
}

/// The `registration_id` of a passkey registration's options.
pub fn registration_id() -> RefOr<Schema> {
    id(
        "The `registration_id` of the options (a UUID). One that is not, or is unknown, used, \
         expired or another account's, is a 422 `invalid_webauthn_response`.",
    )
}

/// The refresh token of a refresh body (absent in cookie mode).
pub fn refresh_token() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(TOKEN_MAX_CHARS))
            .description(Some(format!(
                "The refresh token of the last login or refresh. A cookie session sends `{{}}` \
                 instead: the refresh cookie carries it (with `X-CSRF-Token`). One longer than \
                 {TOKEN_MAX_CHARS} characters (no token is) is a 422 `too_long`."
            )))
            .examples(["q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c"]),
    )
}

/// One of the statements a recovery requester must accept.
pub fn must_be_true() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .description(Some("Must be `true` (`must_be_true` otherwise).")),
    )
}

/// A page number (query).
pub fn page() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(PAGE_MIN))
            .default(Some(PAGE_MIN.into()))
            .description(Some(format!(
                "Page number, from {PAGE_MIN} (default {PAGE_MIN}); a page past the last is empty."
            ))),
    )
}

/// A page size (query).
pub fn per_page() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(PER_PAGE_MIN))
            .maximum(Some(PER_PAGE_MAX))
            .default(Some(PER_PAGE_DEFAULT.into()))
            .description(Some(format!(
                "Items per page, {PER_PAGE_MIN} to {PER_PAGE_MAX} (default {PER_PAGE_DEFAULT})."
            ))),
    )
}

// The same rules as request validators (`#[validate(custom(function = rules::check_…))]` on
// the request bodies): each calls the domain parser that the service calls, so a value refused
// here is refused with the same field-error code and message the service would give.
// `Body::validated` (api/edge.rs) runs them and maps their errors to API.md's 422 field list.

/// A field-level error with the code and sentence of a domain refusal.
fn refusal(code: &'static str, message: String) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Owned(message))
}

/// A refusal that names its field: for struct-level rules (`#[validate(schema(…))]`), whose
/// errors validator files under `__all__`.
pub fn field_refusal(field: &'static str, code: &'static str, message: String) -> ValidationError {
    let mut error = refusal(code, message);
    error.add_param(Cow::Borrowed(FIELD_PARAM), &field);
    error
}

/// The parameter that names the field of a struct-level error.
pub const FIELD_PARAM: &str = "field";

/// A new username ([`Username::parse`]).
pub fn check_username(value: &str) -> Result<(), ValidationError> {
    Username::parse(value)
        .map(|_| ())
        .map_err(|e| refusal(e.code(), e.to_string()))
}

/// An email address ([`EmailAddress::parse`]).
pub fn check_email(value: &str) -> Result<(), ValidationError> {
    EmailAddress::parse(value)
        .map(|_| ())
        .map_err(|e| refusal(e.code(), e.to_string()))
}

/// A new password with what it must not contain ([`NewPassword::parse`]): the account's
/// username and email (`context`).
pub fn check_new_password(
    field: &'static str,
    value: &str,
    context: &[&str],
) -> Result<(), ValidationError> {
    NewPassword::parse(value, context)
        .map(|_| ())
        .map_err(|e| field_refusal(field, e.code(), e.to_string()))
}

/// A passkey's name ([`PasskeyName::parse`]).
pub fn check_passkey_name(value: &str) -> Result<(), ValidationError> {
    PasskeyName::parse(value)
        .map(|_| ())
        .map_err(|e| refusal(e.code(), e.to_string()))
}

/// Refuses text longer than `max` characters (`too_long`); the bound of an input whose
/// content only the store can judge (a password in use, a token, a code).
fn check_at_most(value: &str, max: usize) -> Result<(), ValidationError> {
    if value.chars().count() > max {
        return Err(refusal(
            "too_long",
            text::BoundedTextError::TooLong(max).to_string(),
        ));
    }
    Ok(())
}

/// A password in use: at most [`PASSWORD_IN_USE_MAX_CHARS`] characters.
pub fn check_password(value: &str) -> Result<(), ValidationError> {
    check_at_most(value, PASSWORD_IN_USE_MAX_CHARS)
}

/// A token sent back: at most [`TOKEN_MAX_CHARS`] characters.
pub fn check_token(value: &str) -> Result<(), ValidationError> {
    check_at_most(value, TOKEN_MAX_CHARS)
}

/// A typed second-factor code: at most [`SECOND_FACTOR_CODE_MAX_CHARS`] characters (blank is
/// left to the service, which answers `required`).
pub fn check_second_factor_code(value: &str) -> Result<(), ValidationError> {
    check_at_most(value, SECOND_FACTOR_CODE_MAX_CHARS)
}

/// A username filter: at most [`USERNAME_MAX_CHARS`] characters once trimmed.
pub fn check_username_filter(value: &str) -> Result<(), ValidationError> {
    check_at_most(value.trim(), USERNAME_MAX_CHARS)
}

/// An id filter: blank, or an id.
pub fn check_id_filter(value: &str) -> Result<(), ValidationError> {
    let value = value.trim();
    if value.is_empty() || RequestId::parse(value).is_some() {
        return Ok(());
    }
    Err(refusal("invalid", "is not an id".to_owned()))
}

/// An event type filter: at most [`EVENT_TYPE_MAX_CHARS`] characters once trimmed.
pub fn check_event_type_filter(value: &str) -> Result<(), ValidationError> {
    check_at_most(value.trim(), EVENT_TYPE_MAX_CHARS)
}

/// A login text ([`Login::parse`]): blank or longer than an address is `required`.
pub fn check_login(value: &str) -> Result<(), ValidationError> {
    Login::parse(value)
        .map(|_| ())
        .ok_or_else(|| refusal("required", "is required".to_owned()))
}

fn check_bounded(value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    text::bounded(Some(value), min, max)
        .map(|_| ())
        .map_err(|e| refusal(e.code(), e.to_string()))
}

/// The username named in a recovery request.
pub fn check_request_username(value: &str) -> Result<(), ValidationError> {
    check_bounded(value, 1, USERNAME_MAX_CHARS)
}

/// A contact email: blank is `required`, otherwise an email address.
pub fn check_contact_email(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(refusal("required", "is required".to_owned()));
    }
    check_email(value.trim())
}

/// The reason of a recovery request.
pub fn check_reason(value: &str) -> Result<(), ValidationError> {
    check_bounded(value, REASON_MIN_CHARS, TEXT_MAX_CHARS)
}

/// A required free text.
pub fn check_free_text(value: &str) -> Result<(), ValidationError> {
    check_bounded(value, 1, TEXT_MAX_CHARS)
}

/// An optional free text: blank counts as absent.
pub fn check_optional_free_text(value: &str) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Ok(());
    }
    check_free_text(value)
}

/// A statement that must be accepted.
pub fn check_true(value: &bool) -> Result<(), ValidationError> {
    if *value {
        Ok(())
    } else {
        Err(refusal("must_be_true", "must be true".to_owned()))
    }
}

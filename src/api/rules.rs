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
    EMAIL_MAX_BYTES, LOGIN_MAX_BYTES, PAGE_MIN, PASSKEY_NAME_MAX_CHARS, PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS, PER_PAGE_DEFAULT, PER_PAGE_MAX, PER_PAGE_MIN, REASON_MIN_CHARS,
    TEXT_MAX_CHARS, USERNAME_MAX_CHARS, USERNAME_MIN_CHARS,
};
use crate::domain::text;
use crate::domain::{EmailAddress, Login, NewPassword, PasskeyName, Username};

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

/// A password in use (login, re-authentication): any text, checked against the hash.
pub fn password() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .description(Some(
                "The account's password. A wrong one is a 401 or 403, never a 422.",
            ))
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
            .description(Some(
                "Six digits from the authenticator app, or a recovery code like \
                 `k3vq-9x2m-hh4t-a7pe-w0cd` (case, dashes and spaces do not matter). Blank is a \
                 422 `required`; a wrong code, whatever its shape, is refused as a wrong code.",
            ))
            .examples(["492039"]),
    )
}

/// A token from an emailed link or an earlier answer: opaque, checked only against the store.
pub fn token() -> RefOr<Schema> {
    done(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An opaque token as received (link parameter or earlier answer). An unknown, \
                 used or expired one is refused with its own code, never a 422.",
            ))
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

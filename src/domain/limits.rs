//! The one home of every limit an input is checked against. The domain parsers and the
//! services check these; the OpenAPI document's schemas (`api/rules.rs`) and the request
//! validators (`validator` derives in `api/`) read the same constants, so the document, the
//! generated clients and the server cannot drift apart.

/// Fewest characters of a new username (after trimming and NFKC).
pub const USERNAME_MIN_CHARS: usize = 3;
/// Most characters of a username (a new one, or the one named in a recovery request).
pub const USERNAME_MAX_CHARS: usize = 50;
/// Most bytes of an email address (RFC 5321's path limit).
pub const EMAIL_MAX_BYTES: usize = 254;
/// Most bytes of a login text (a username or an email address).
pub const LOGIN_MAX_BYTES: usize = EMAIL_MAX_BYTES;
/// Fewest characters of a new password (NIST SP 800-63B-4's floor with a second factor).
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most characters of a new password.
pub const PASSWORD_MAX_CHARS: usize = 128;
/// Fewest characters (after trimming) of the reason of a recovery request.
pub const REASON_MIN_CHARS: usize = 10;
/// The most characters (after trimming) of any free text on a recovery request: the reason,
/// requester replies, support messages and notes, the approval comment and justification, and
/// the denial reason.
pub const TEXT_MAX_CHARS: usize = 5_000;
/// Digits of an authenticator (TOTP) code.
pub const TOTP_DIGITS: usize = 6;
/// First page of a list.
pub const PAGE_MIN: i64 = 1;
/// Fewest items per page.
pub const PER_PAGE_MIN: i64 = 1;
/// Most items per page.
pub const PER_PAGE_MAX: i64 = 100;
/// Items per page when `per_page` is not given.
pub const PER_PAGE_DEFAULT: i64 = 50;
/// Most bytes of an `X-Device-Token` header worth reading.
pub const DEVICE_TOKEN_MAX_BYTES: usize = 256;
/// Most characters of a passkey's name (after trimming); at least one.
pub const PASSKEY_NAME_MAX_CHARS: usize = 64;

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
/// Most bytes of a CSRF header (`X-CSRF-Token`) worth comparing; the tokens this service
/// issues are 43. A longer header counts as missing (403 `csrf_failed`).
pub const CSRF_TOKEN_MAX_BYTES: usize = 256;
/// Most characters of a token a client sends back: an emailed link's token (43 bytes), a refresh or
/// tracking token (43), an mfa token (a JWT of about 350 bytes, longer with a long
/// `PUBLIC_URL` in its `iss`). A longer one is refused at the edge (a 422 `too_long` in a body,
/// a missing header otherwise) before any lookup or signature check.
pub const TOKEN_MAX_CHARS: usize = 2_048;
/// Most characters of a password in use (login, re-authentication). New passwords stop at
/// [`PASSWORD_MAX_CHARS`]; this bound is far above it so that no stored password is ever cut
/// off, and keeps megabyte "passwords" away from argon2.
pub const PASSWORD_IN_USE_MAX_CHARS: usize = 1_024;
/// Most characters of a typed second-factor code: six digits, or a recovery code of 20
/// characters and 4 dashes, with room for the spaces people type.
pub const SECOND_FACTOR_CODE_MAX_CHARS: usize = 64;
/// Characters of an id (a canonical, hyphenated UUID).
pub const ID_CHARS: usize = 36;
/// Most characters of an audit event type filter (`recovery_request.attachment_viewed` is 34).
pub const EVENT_TYPE_MAX_CHARS: usize = 100;

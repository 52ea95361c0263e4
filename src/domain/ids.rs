//! Identifiers of stored things: random UUIDs, kept as their canonical lower-case text (the
//! form both databases store). Each kind has its own type, so an account id cannot be passed
//! where a request id is expected, and an id that arrives in a path is checked once, here:
//! anything that is not a canonical UUID (NUL bytes, control characters, huge strings) is
//! simply not an id, which the API answers with a 404.

use std::fmt;

macro_rules! id_types {
    ($($(#[$doc:meta])* $name:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// A new random id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Reads an id from outside (a path, a token's claim): `None` unless it is a
            /// canonical hyphenated UUID.
            pub fn parse(raw: &str) -> Option<Self> {
                parse_uuid(raw).map(Self)
            }

            /// Wraps an id read back from the database (already canonical).
            pub fn from_stored(stored: String) -> Self {
                Self(stored)
            }

            /// The stored text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The stored text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

id_types! {
    /// An account.
    AccountId,
    /// A session (one login and its refresh-token family).
    SessionId,
    /// An account-recovery request.
    RequestId,
    /// A message or note on a recovery request.
    MessageId,
    /// A device (browser or app install) an account signed in from.
    DeviceId,
    /// An mfa challenge: a login's password step, waiting for its second factor.
    ChallengeId,
    /// A passkey (a WebAuthn credential registered to an account).
    PasskeyId,
    /// A WebAuthn ceremony (registration or login) waiting for its answer.
    CeremonyId,
}

/// The canonical form of a UUID in `raw`, if it is one (36 characters, hyphenated, any case).
fn parse_uuid(raw: &str) -> Option<String> {
    if raw.len() != crate::domain::limits::ID_CHARS {
        return None;
    }
    uuid::Uuid::try_parse(raw)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_read_back() {
        let id = RequestId::generate();
        assert_eq!(RequestId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn ids_are_canonical_lower_case() {
        let upper = "0F8FAD5B-D9CB-469F-A165-70867728950E";
        assert_eq!(
            AccountId::parse(upper).map(AccountId::into_string),
            Some(upper.to_lowercase())
        );
    }

    #[test]
    fn anything_else_is_not_an_id() {
        for raw in [
            "",
            "abc",
            "abc\0def",
            "0f8fad5b-d9cb-469f-a165-70867728950\0",
            "0f8fad5bd9cb469fa16570867728950e",
            "{0f8fad5b-d9cb-469f-a165-70867728950e}",
            &"9".repeat(10_000),
        ] {
            assert_eq!(SessionId::parse(raw), None, "{raw:?}");
        }
    }
}

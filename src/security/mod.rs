//! Password hashing, random tokens, JWT, encryption at rest and rate limiting: the primitives
//! services build on. Nothing here touches HTTP.

pub mod crypto;
pub mod jwt;
pub mod password;
pub mod tokens;
pub mod totp;
pub mod webauthn;

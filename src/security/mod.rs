//! Password hashing, tokens, JWT, TOTP, encryption at rest and rate limiting.

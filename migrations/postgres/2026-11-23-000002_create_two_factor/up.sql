-- Two-factor authentication: TOTP credentials (secret sealed with the data key), recovery-code
-- sets (superseded sets are kept so an old code can be explained), their codes (argon2id hashes
-- selected by a short non-secret lookup id), and single-use mfa challenges of logins.
CREATE TABLE totp_credentials (
    account_id TEXT PRIMARY KEY NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    last_used_step BIGINT
);

CREATE TABLE recovery_code_sets (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    superseded_at TIMESTAMP
);
CREATE INDEX recovery_code_sets_account_id ON recovery_code_sets (account_id);

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    set_id TEXT NOT NULL REFERENCES recovery_code_sets (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    lookup TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP,
    used_ip TEXT,
    used_user_agent TEXT
);
CREATE UNIQUE INDEX recovery_codes_account_lookup ON recovery_codes (account_id, lookup);
CREATE INDEX recovery_codes_set_id ON recovery_codes (set_id);

CREATE TABLE mfa_challenges (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX mfa_challenges_account_id ON mfa_challenges (account_id);

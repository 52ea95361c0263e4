-- Passkeys (WebAuthn credentials) as a second factor. The stored credential is webauthn-rs's
-- serialised form: credential id, public key, counter and flags, none of it secret (a public
-- key signs nothing); the columns beside it are what queries and the owner's list need.
-- A credential id belongs to one account only (UNIQUE).
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    name TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backed_up INTEGER NOT NULL,
    transports TEXT,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_account ON passkeys (account_id);

-- Server-side state of a WebAuthn ceremony (the challenge and what it expects): five minutes,
-- single use (used_at set by a conditional UPDATE), bound to the account, and for a login to
-- the mfa challenge it finishes.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    mfa_challenge_id TEXT,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX webauthn_ceremonies_account ON webauthn_ceremonies (account_id);
CREATE INDEX webauthn_ceremonies_mfa ON webauthn_ceremonies (mfa_challenge_id);

-- The browsers and app installs an account has signed in from (OWASP's device cookies): a
-- known device keeps its own failed-login budget, and device knowledge is evidence for
-- new-device confirmation and recovery requests. The token is stored only as a SHA-256 hash.
CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL
);
CREATE INDEX devices_account ON devices (account_id);
ALTER TABLE sessions ADD COLUMN device_id TEXT;

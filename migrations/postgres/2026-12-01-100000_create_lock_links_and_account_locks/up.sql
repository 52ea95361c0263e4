-- The owner's lock (issue 17). Every security notice carries a single-use "it wasn't me" link;
-- its token is stored only as a SHA-256 hash. A link from an email-change notice also carries
-- the address to put back (and its look-alike key), valid until `restore_until`.
CREATE TABLE lock_links (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    notice TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    restore_email TEXT,
    restore_skeleton TEXT,
    restore_until TIMESTAMP
);
CREATE INDEX lock_links_account ON lock_links (account_id);
CREATE INDEX lock_links_restore_email ON lock_links (restore_email);
CREATE INDEX lock_links_restore_skeleton ON lock_links (restore_skeleton);

-- A lock of an account by its owner; open while `unlocked_at` is NULL (at most one open lock
-- per account).
CREATE TABLE account_locks (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    notice TEXT NOT NULL,
    locked_at TIMESTAMP NOT NULL,
    restored_email TEXT,
    ip TEXT,
    user_agent TEXT,
    unlocked_at TIMESTAMP,
    unlocked_by TEXT
);
CREATE INDEX account_locks_account ON account_locks (account_id);
CREATE UNIQUE INDEX account_locks_one_open ON account_locks (account_id) WHERE unlocked_at IS NULL;

-- Each change of an account's address (a confirmed email change, or a lock putting the old one
-- back): evidence for support when judging a recovery request.
CREATE TABLE email_address_changes (
    id TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    old_email TEXT NOT NULL,
    new_email TEXT NOT NULL,
    how TEXT NOT NULL,
    changed_at TIMESTAMP NOT NULL
);
CREATE INDEX email_address_changes_account ON email_address_changes (account_id, changed_at);

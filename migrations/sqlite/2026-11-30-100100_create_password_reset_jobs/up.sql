-- Password-reset requests recorded in the request's own transaction, known login or not, so
-- that an answered request survives a crash; a worker turns each into its token and mail (or
-- into nothing) and deletes it. No login text is kept: the account (when one matched), a keyed
-- hash of its address at request time, and the client details the mail reports.
CREATE TABLE password_reset_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    step TEXT NOT NULL CHECK (step IN ('link', 'unverified', 'rehearse', 'nothing')),
    account_id TEXT REFERENCES accounts (id) ON DELETE CASCADE,
    email_key TEXT,
    ip TEXT,
    user_agent TEXT,
    requested_at TIMESTAMP NOT NULL
);
CREATE INDEX password_reset_jobs_requested_at ON password_reset_jobs (requested_at);

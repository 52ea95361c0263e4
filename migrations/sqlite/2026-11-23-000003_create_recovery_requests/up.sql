-- Account-recovery requests from owners who lost every factor, and the messages and internal
-- notes exchanged about them. Tokens are looked up by SHA-256; the tracking and ownership tokens,
-- which stay valid while the request is open and are mailed again, are also kept sealed with the
-- data key (AES-256-GCM). The single-use completion token is stored only as a hash.
CREATE TABLE recovery_requests (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    account_id TEXT REFERENCES accounts (id) ON DELETE SET NULL,
    contact_email TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    tracking_token_hash TEXT NOT NULL UNIQUE,
    tracking_token_sealed TEXT NOT NULL,
    ownership_token_hash TEXT UNIQUE,
    ownership_token_sealed TEXT,
    ownership TEXT NOT NULL DEFAULT 'unanswered',
    ownership_answered_at TIMESTAMP,
    duplicate_of TEXT,
    submitted_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by TEXT,
    decision_note TEXT,
    deliver_to TEXT,
    completion_token_hash TEXT UNIQUE,
    link_due_at TIMESTAMP,
    link_sent_at TIMESTAMP,
    link_expires_at TIMESTAMP,
    completed_at TIMESTAMP,
    submitted_ip TEXT,
    submitted_user_agent TEXT
);
CREATE INDEX recovery_requests_status ON recovery_requests (status, submitted_at);
CREATE INDEX recovery_requests_account_id ON recovery_requests (account_id);
CREATE INDEX recovery_requests_contact_email ON recovery_requests (contact_email);

CREATE TABLE recovery_request_messages (
    id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES recovery_requests (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('requester', 'support', 'note')),
    author_id TEXT,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_request_messages_request_id ON recovery_request_messages (request_id, created_at);

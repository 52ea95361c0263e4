-- Documents a requester uploads when support asks (RECOVERY_ATTACHMENTS=on). Each file is
-- encrypted (AES-256-GCM) with its own random key; the key is stored wrapped (sealed) by the
-- data key. content holds base64(nonce || ciphertext || tag). Deleted with the request's other
-- personal data at retention.
CREATE TABLE recovery_request_attachments (
    id TEXT PRIMARY KEY NOT NULL,
    request_id TEXT NOT NULL REFERENCES recovery_requests (id) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    wrapped_key TEXT NOT NULL,
    content TEXT NOT NULL,
    uploaded_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_request_attachments_request_id ON recovery_request_attachments (request_id, uploaded_at);

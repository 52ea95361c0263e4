-- Retention: RECOVERY_DATA_RETENTION after a request reaches a final status (counted from its
-- last change), its personal data is erased; the erasure empties contact_email, which a live
-- request never has, so the same conditional UPDATE finds it once. These indexes keep the
-- batch job's reads to ranges; old delivered or failed mails go the same way.
CREATE INDEX recovery_requests_status_updated_at ON recovery_requests (status, updated_at);
CREATE INDEX outbox_sent_at ON outbox (sent_at);
CREATE INDEX outbox_failed_at ON outbox (failed_at);

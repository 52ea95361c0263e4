-- No request waits forever: a request in needs_info is reminded once after
-- RECOVERY_NEEDS_INFO_REMINDER_AFTER and abandoned after RECOVERY_NEEDS_INFO_CLOSE_AFTER,
-- counted from support's last question. Requests already waiting count from their last change.
ALTER TABLE recovery_requests ADD COLUMN needs_info_since TIMESTAMP;
ALTER TABLE recovery_requests ADD COLUMN reminded_at TIMESTAMP;
UPDATE recovery_requests SET needs_info_since = updated_at WHERE status = 'needs_info';
CREATE INDEX recovery_requests_needs_info_since ON recovery_requests (status, needs_info_since);

-- The device of the requester, when the request came with the X-Device-Token of a device the
-- account knows: evidence for support, and a condition of auto-approval.
ALTER TABLE recovery_requests ADD COLUMN submitted_device_id TEXT;

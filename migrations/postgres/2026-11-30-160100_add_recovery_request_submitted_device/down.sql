ALTER TABLE recovery_requests DROP COLUMN submitted_device_id;

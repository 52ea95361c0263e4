DROP INDEX outbox_request_id;
ALTER TABLE outbox DROP COLUMN failed_at;
ALTER TABLE outbox DROP COLUMN request_id;

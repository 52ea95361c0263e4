DROP INDEX outbox_failed_at;
DROP INDEX outbox_sent_at;
DROP INDEX recovery_requests_status_updated_at;

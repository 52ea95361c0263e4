DROP INDEX outbox_sent_at;
DROP INDEX outbox_failed_at;
CREATE INDEX outbox_sent_at ON outbox (sent_at);
CREATE INDEX outbox_failed_at ON outbox (failed_at);

-- The dispatcher's claim (`sent_at IS NULL AND failed_at IS NULL … ORDER BY next_attempt_at`)
-- must walk the `outbox_pending` index. With plain indexes on `sent_at` and `failed_at`,
-- SQLite's planner took `failed_at IS NULL` for a selective lookup, read every row of the
-- table (bodies and all) and sorted them, on every claim: a backlog of 8,000 mails was sent at
-- 50 a second. The retention job only looks for delivered or given-up mails, so these indexes
-- need only those rows, and `IS NULL` can no longer pick them.
DROP INDEX outbox_sent_at;
DROP INDEX outbox_failed_at;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_failed_at ON outbox (failed_at) WHERE failed_at IS NOT NULL;

-- Did my mail arrive: every mail about a recovery request names it, so the requester's status
-- and support's evidence list them (one indexed read); a mail the server refused for good, or
-- that ran out of attempts or age, is marked failed and no longer tried.
ALTER TABLE outbox ADD COLUMN request_id TEXT;
ALTER TABLE outbox ADD COLUMN failed_at TIMESTAMP;
CREATE INDEX outbox_request_id ON outbox (request_id);

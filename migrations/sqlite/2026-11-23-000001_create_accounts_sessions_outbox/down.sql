DROP TABLE rate_limit_hits;
DROP TABLE audit_events;
DROP TABLE outbox;
DROP TABLE email_tokens;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE accounts;

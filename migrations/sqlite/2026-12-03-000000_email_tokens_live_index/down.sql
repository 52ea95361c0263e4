DROP INDEX email_tokens_live;
CREATE INDEX email_tokens_account_purpose ON email_tokens (account_id, purpose);

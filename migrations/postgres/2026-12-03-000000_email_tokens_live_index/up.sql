-- Issuing a token voids the account's live tokens of that purpose first (`revoke_all`). With an
-- index on (account_id, purpose) alone that UPDATE visited every token the account was ever
-- sent, spent or voided ones included: a third of SQLite's writer time in a burst of password
-- resets, and growing with every request. Every query by account reads live tokens only, so
-- the index holds only those, and stays as small as the number of links still out.
DROP INDEX email_tokens_account_purpose;
CREATE INDEX email_tokens_live ON email_tokens (account_id, purpose)
    WHERE used_at IS NULL AND revoked_at IS NULL;

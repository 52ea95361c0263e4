DROP INDEX password_reset_jobs_account;
DROP INDEX email_tokens_account;

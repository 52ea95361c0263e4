-- The UTS #39 confusable skeletons of each account's username and email (issue 14): a new
-- username or email that looks like an existing one is refused with one indexed lookup, and the
-- unique indexes settle two look-alike registrations racing each other. SQL cannot compute a
-- skeleton: registration fills them, and the application fills those of older rows right after
-- migrating (`repo::accounts::fill_missing_skeletons`). Several NULLs never collide.
ALTER TABLE accounts ADD COLUMN username_skeleton TEXT;
ALTER TABLE accounts ADD COLUMN email_skeleton TEXT;
CREATE UNIQUE INDEX accounts_username_skeleton ON accounts (username_skeleton);
CREATE UNIQUE INDEX accounts_email_skeleton ON accounts (email_skeleton);

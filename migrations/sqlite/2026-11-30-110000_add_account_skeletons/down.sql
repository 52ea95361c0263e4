DROP INDEX accounts_email_skeleton;
DROP INDEX accounts_username_skeleton;
ALTER TABLE accounts DROP COLUMN email_skeleton;
ALTER TABLE accounts DROP COLUMN username_skeleton;

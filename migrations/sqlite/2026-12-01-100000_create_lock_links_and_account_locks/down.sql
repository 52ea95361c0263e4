DROP TABLE email_address_changes;
DROP TABLE account_locks;
DROP TABLE lock_links;

-- The approval's justification gets its own column (issue 21). Until now a contact-email
-- approval stored "contact_email: <justification>" in deliver_to, which readers could not
-- parse. Expand: add the column and move the text after the first ": " into it, leaving the
-- bare choice in deliver_to. Readers still accept the old combined form, so instances of the
-- previous version may keep writing it during a rolling deploy.
ALTER TABLE recovery_requests ADD COLUMN deliver_justification TEXT;

UPDATE recovery_requests
SET deliver_justification = substr(deliver_to, strpos(deliver_to, ': ') + 2),
    deliver_to = substr(deliver_to, 1, strpos(deliver_to, ': ') - 1)
WHERE strpos(deliver_to, ': ') > 0;

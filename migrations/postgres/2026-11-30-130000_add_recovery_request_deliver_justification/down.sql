UPDATE recovery_requests
SET deliver_to = deliver_to || ': ' || deliver_justification
WHERE deliver_to IS NOT NULL AND deliver_justification IS NOT NULL;

ALTER TABLE recovery_requests DROP COLUMN deliver_justification;

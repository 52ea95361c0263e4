ALTER TABLE recovery_requests DROP COLUMN first_approval_at;
ALTER TABLE recovery_requests DROP COLUMN first_approval_by;

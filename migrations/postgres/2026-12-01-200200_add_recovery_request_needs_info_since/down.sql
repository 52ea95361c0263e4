DROP INDEX recovery_requests_needs_info_since;
ALTER TABLE recovery_requests DROP COLUMN reminded_at;
ALTER TABLE recovery_requests DROP COLUMN needs_info_since;

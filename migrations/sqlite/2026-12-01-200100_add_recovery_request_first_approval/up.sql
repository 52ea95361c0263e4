-- Four eyes: a request for a support account needs two approvals by different support
-- accounts. The first is recorded here (the conditional UPDATE on "no first approval yet"
-- decides between two support accounts approving at once); the second approves.
ALTER TABLE recovery_requests ADD COLUMN first_approval_by TEXT;
ALTER TABLE recovery_requests ADD COLUMN first_approval_at TIMESTAMP;

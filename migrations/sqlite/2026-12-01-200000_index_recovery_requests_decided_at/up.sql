-- The estimate of a request's decision time reads the requests decided in the last 30 days:
-- one range over this index instead of a scan of every request.
CREATE INDEX recovery_requests_decided_at ON recovery_requests (decided_at);

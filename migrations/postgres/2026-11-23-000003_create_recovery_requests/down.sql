DROP TABLE recovery_request_messages;
DROP TABLE recovery_requests;

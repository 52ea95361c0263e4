-- One row per limit bucket (GCRA): the bucket's theoretical arrival time in microseconds since
-- the Unix epoch. A check reads and writes one row whatever the load, and an attempt is counted
-- in the same statement that decides it. The event log it replaces held a row per attempt.
CREATE TABLE rate_limit_buckets (
    bucket TEXT PRIMARY KEY NOT NULL,
    tat BIGINT NOT NULL
);
CREATE INDEX rate_limit_buckets_tat ON rate_limit_buckets (tat);
DROP TABLE rate_limit_hits;

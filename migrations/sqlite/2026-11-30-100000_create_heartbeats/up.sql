-- One row that readiness rewrites in a write transaction: a commit proves writes commit (a
-- full disk or a read-only database fails it), which a read cannot show.
CREATE TABLE heartbeats (
    id INTEGER PRIMARY KEY NOT NULL,
    beat_at TIMESTAMP NOT NULL
);
INSERT INTO heartbeats (id, beat_at) VALUES (1, CURRENT_TIMESTAMP);

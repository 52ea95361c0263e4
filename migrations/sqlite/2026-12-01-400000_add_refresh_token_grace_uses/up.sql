-- How many new pairs a rotated refresh token has answered inside REFRESH_REUSE_GRACE (two tabs
-- refreshing at once). A conditional UPDATE on it decides a burst: only a few such pairs per
-- rotated token, whatever the number of parallel requests.
ALTER TABLE refresh_tokens ADD COLUMN grace_uses INTEGER NOT NULL DEFAULT 0;

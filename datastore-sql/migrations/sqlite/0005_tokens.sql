-- Access tokens (`AccessToken`): the id and the SHA-256 of the secret,
-- never the token itself; listed by the profile they act as.
CREATE TABLE ds_tokens (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    profile_id TEXT
);
CREATE INDEX ds_tokens_profile ON ds_tokens (profile_id, key);

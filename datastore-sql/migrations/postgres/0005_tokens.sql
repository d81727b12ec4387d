-- Access tokens (`AccessToken`): the id and the SHA-256 of the secret,
-- never the token itself; listed by the profile they act as.
CREATE TABLE ds_tokens (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    profile_id TEXT COLLATE "C"
);
CREATE INDEX ds_tokens_profile ON ds_tokens (profile_id, key);

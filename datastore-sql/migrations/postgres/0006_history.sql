-- Record history and attribution: who made each write (an `actor` column
-- on every record table and on the feed), and every version of the
-- editable records in `ds_history`, written in the same transaction as
-- the write. Records already stored start their history at the version
-- they have now. Times are microseconds since the Unix epoch (UTC).

ALTER TABLE ds_profiles ADD COLUMN actor TEXT;
ALTER TABLE ds_workflows ADD COLUMN actor TEXT;
ALTER TABLE ds_runs ADD COLUMN actor TEXT;
ALTER TABLE ds_keys ADD COLUMN actor TEXT;
ALTER TABLE ds_collections ADD COLUMN actor TEXT;
ALTER TABLE ds_logs ADD COLUMN actor TEXT;
ALTER TABLE ds_tokens ADD COLUMN actor TEXT;
ALTER TABLE ds_changes ADD COLUMN actor TEXT;

CREATE TABLE ds_history (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    revision BIGINT NOT NULL,
    op TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT,
    body TEXT,
    PRIMARY KEY (kind, key, revision)
);
CREATE INDEX ds_history_at ON ds_history (kind, at);

INSERT INTO ds_history (kind, key, revision, op, at, actor, body)
    SELECT 'profiles', key, revision, 'put', stored_updated, NULL, body::text FROM ds_profiles;
INSERT INTO ds_history (kind, key, revision, op, at, actor, body)
    SELECT 'workflows', key, revision, 'put', stored_updated, NULL, body::text FROM ds_workflows;
INSERT INTO ds_history (kind, key, revision, op, at, actor, body)
    SELECT 'runs', key, revision, 'put', stored_updated, NULL, body::text FROM ds_runs;
INSERT INTO ds_history (kind, key, revision, op, at, actor, body)
    SELECT 'keys', key, revision, 'put', stored_updated, NULL, body::text FROM ds_keys;
INSERT INTO ds_history (kind, key, revision, op, at, actor, body)
    SELECT 'collections', key, revision, 'put', stored_updated, NULL, body::text FROM ds_collections;

-- The datastore's tables: one per substore, an indexed column for every
-- filter, order and unique field, the record body as JSON text.
-- Times are microseconds since the Unix epoch (UTC).

CREATE TABLE ds_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO ds_meta (name, value) VALUES ('head', 0), ('compacted_through', 0);
CREATE TABLE ds_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE ds_changes (seq BIGINT PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, op TEXT NOT NULL, revision BIGINT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX ds_changes_at ON ds_changes (at);

CREATE TABLE ds_profiles (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    username TEXT,
    created BIGINT
);
CREATE INDEX ds_profiles_username ON ds_profiles (username, key);
CREATE UNIQUE INDEX ds_profiles_username_uq ON ds_profiles (username);
CREATE INDEX ds_profiles_created ON ds_profiles (created, key);

CREATE TABLE ds_workflows (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    init_id TEXT,
    owner_id TEXT,
    created BIGINT,
    active_created BIGINT
);
CREATE INDEX ds_workflows_init_id ON ds_workflows (init_id, key);
CREATE UNIQUE INDEX ds_workflows_init_id_uq ON ds_workflows (init_id);
CREATE INDEX ds_workflows_owner ON ds_workflows (owner_id, created, key);
CREATE INDEX ds_workflows_active ON ds_workflows (active_created, key) WHERE active_created IS NOT NULL;
CREATE INDEX ds_workflows_created ON ds_workflows (created, key);

CREATE TABLE ds_runs (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    workflow_id TEXT,
    number BIGINT,
    owner_id TEXT,
    status TEXT,
    created BIGINT
);
CREATE INDEX ds_runs_workflow_number ON ds_runs (workflow_id, number, key);
CREATE UNIQUE INDEX ds_runs_workflow_number_uq ON ds_runs (workflow_id, number);
CREATE INDEX ds_runs_owner_status ON ds_runs (owner_id, status, created, key);
CREATE INDEX ds_runs_created ON ds_runs (created, key);

CREATE TABLE ds_keys (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    profile_id TEXT
);
CREATE INDEX ds_keys_profile ON ds_keys (profile_id, key);

CREATE TABLE ds_collections (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    profile_id TEXT,
    name TEXT,
    commit_time BIGINT,
    init_id TEXT
);
CREATE INDEX ds_collections_profile_name ON ds_collections (profile_id, name, key);
CREATE INDEX ds_collections_profile_commit_time ON ds_collections (profile_id, commit_time, key);
CREATE INDEX ds_collections_init_id ON ds_collections (init_id, key);

CREATE TABLE ds_logs (
    key TEXT PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body TEXT NOT NULL,
    log_id TEXT,
    seq BIGINT
);
CREATE INDEX ds_logs_log_seq ON ds_logs (log_id, seq, key);
CREATE UNIQUE INDEX ds_logs_log_seq_uq ON ds_logs (log_id, seq);

-- The datastore's tables: one per substore, an indexed column for every
-- filter, order and unique field, the record body as JSONB.
-- Times are microseconds since the Unix epoch (UTC).

CREATE TABLE ds_meta (name TEXT COLLATE "C" PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO ds_meta (name, value) VALUES ('head', 0), ('compacted_through', 0);
CREATE TABLE ds_counters (name TEXT COLLATE "C" PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE ds_changes (seq BIGINT PRIMARY KEY, kind TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, op TEXT COLLATE "C" NOT NULL, revision BIGINT NOT NULL, at BIGINT NOT NULL);
CREATE INDEX ds_changes_at ON ds_changes (at);

CREATE TABLE ds_profiles (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    username TEXT COLLATE "C",
    created BIGINT
);
CREATE INDEX ds_profiles_username ON ds_profiles (username, key);
CREATE UNIQUE INDEX ds_profiles_username_uq ON ds_profiles (username);
CREATE INDEX ds_profiles_created ON ds_profiles (created, key);

CREATE TABLE ds_workflows (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    init_id TEXT COLLATE "C",
    owner_id TEXT COLLATE "C",
    created BIGINT,
    active_created BIGINT
);
CREATE INDEX ds_workflows_init_id ON ds_workflows (init_id, key);
CREATE UNIQUE INDEX ds_workflows_init_id_uq ON ds_workflows (init_id);
CREATE INDEX ds_workflows_owner ON ds_workflows (owner_id, created, key);
CREATE INDEX ds_workflows_active ON ds_workflows (active_created, key) WHERE active_created IS NOT NULL;
CREATE INDEX ds_workflows_created ON ds_workflows (created, key);

CREATE TABLE ds_runs (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    workflow_id TEXT COLLATE "C",
    number BIGINT,
    owner_id TEXT COLLATE "C",
    status TEXT COLLATE "C",
    created BIGINT
);
CREATE INDEX ds_runs_workflow_number ON ds_runs (workflow_id, number, key);
CREATE UNIQUE INDEX ds_runs_workflow_number_uq ON ds_runs (workflow_id, number);
CREATE INDEX ds_runs_owner_status ON ds_runs (owner_id, status, created, key);
CREATE INDEX ds_runs_created ON ds_runs (created, key);

CREATE TABLE ds_keys (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    profile_id TEXT COLLATE "C"
);
CREATE INDEX ds_keys_profile ON ds_keys (profile_id, key);

CREATE TABLE ds_collections (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    profile_id TEXT COLLATE "C",
    name TEXT COLLATE "C",
    commit_time BIGINT,
    init_id TEXT COLLATE "C"
);
CREATE INDEX ds_collections_profile_name ON ds_collections (profile_id, name, key);
CREATE INDEX ds_collections_profile_commit_time ON ds_collections (profile_id, commit_time, key);
CREATE INDEX ds_collections_init_id ON ds_collections (init_id, key);

CREATE TABLE ds_logs (
    key TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL,
    stored_created BIGINT NOT NULL,
    stored_updated BIGINT NOT NULL,
    body JSONB NOT NULL,
    log_id TEXT COLLATE "C",
    seq BIGINT
);
CREATE INDEX ds_logs_log_seq ON ds_logs (log_id, seq, key);
CREATE UNIQUE INDEX ds_logs_log_seq_uq ON ds_logs (log_id, seq);

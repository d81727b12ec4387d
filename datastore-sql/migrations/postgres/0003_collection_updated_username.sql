-- Collection entries by "updated" (the later of commit time and the latest
-- run's end) within a profile, and by the dataset owner's username (so a
-- rename reaches every entry that copies it). The engine fills both
-- columns for existing rows at open (its index fingerprint changed).
ALTER TABLE ds_collections ADD COLUMN updated BIGINT;
ALTER TABLE ds_collections ADD COLUMN username TEXT COLLATE "C";
CREATE INDEX ds_collections_profile_updated ON ds_collections (profile_id, updated, key);
CREATE INDEX ds_collections_username ON ds_collections (username, key);
-- The index definitions the columns were last filled for (a text hash).
CREATE TABLE ds_index_fingerprint (fingerprint TEXT NOT NULL);

-- Filtered feed reads (`ChangeFeed::since_matching`): a filter naming
-- record ids searches (key, seq), one naming parents searches (parent, seq),
-- each from the reader's cursor on.
CREATE INDEX ds_changes_key ON ds_changes (key, seq);
CREATE INDEX ds_changes_parent ON ds_changes (parent, seq) WHERE parent IS NOT NULL;

-- The record a change belongs to (a run's workflow, a log entry's log, a
-- collection entry's profile), so clients following it see new children.
ALTER TABLE ds_changes ADD COLUMN parent TEXT COLLATE "C";

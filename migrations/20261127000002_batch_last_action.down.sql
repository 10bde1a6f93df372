DROP INDEX reconcile_runs_slot;
--bun:split
ALTER TABLE batches DROP COLUMN last_action;

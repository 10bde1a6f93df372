ALTER TABLE batches ADD COLUMN last_action TEXT NOT NULL DEFAULT '{}';
--bun:split
CREATE UNIQUE INDEX reconcile_runs_slot ON reconcile_runs (host_id, slot) WHERE slot <> '';

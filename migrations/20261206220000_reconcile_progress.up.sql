ALTER TABLE reconcile_runs ADD COLUMN objects_checked INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE reconcile_runs ADD COLUMN objects_total INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE reconcile_runs ADD COLUMN heartbeat_at TIMESTAMP;
--bun:split
CREATE INDEX reconcile_runs_host_status ON reconcile_runs (host_id, status);
--bun:split
CREATE UNIQUE INDEX reconcile_runs_periodic_running ON reconcile_runs (host_id) WHERE status = 'running' AND slot <> '';
--bun:split
CREATE INDEX managed_resources_host ON managed_resources (host_id, id);

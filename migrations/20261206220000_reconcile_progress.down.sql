DROP INDEX managed_resources_host;
--bun:split
DROP INDEX reconcile_runs_periodic_running;
--bun:split
DROP INDEX reconcile_runs_host_status;
--bun:split
ALTER TABLE reconcile_runs DROP COLUMN heartbeat_at;
--bun:split
ALTER TABLE reconcile_runs DROP COLUMN objects_total;
--bun:split
ALTER TABLE reconcile_runs DROP COLUMN objects_checked;

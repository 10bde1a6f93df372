DROP TABLE reconcile_runs;
--bun:split
DROP TABLE managed_resources;
--bun:split
DROP TABLE attempts;
--bun:split
DROP TABLE items;
--bun:split
DROP TABLE batches;
--bun:split
DROP TABLE hosts;

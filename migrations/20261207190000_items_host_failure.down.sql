DROP INDEX IF EXISTS items_host_failure;

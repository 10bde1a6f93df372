DROP INDEX IF EXISTS items_batch_group;

DROP INDEX items_batch_status;

-- The batch page counts a batch's items per target group and status while the batch
-- runs; with this index the count reads no item row (50 ms per poll at 10 000 items
-- before; issue 17).
CREATE INDEX items_batch_group ON items (batch_id, target_group, status);

DROP INDEX batches_idempotency;
--bun:split
ALTER TABLE batches DROP COLUMN idempotency_key;

ALTER TABLE batches ADD COLUMN idempotency_key VARCHAR(200);
--bun:split
CREATE UNIQUE INDEX batches_idempotency ON batches (host_id, idempotency_key);

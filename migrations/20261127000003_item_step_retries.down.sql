ALTER TABLE items DROP COLUMN step_retries;

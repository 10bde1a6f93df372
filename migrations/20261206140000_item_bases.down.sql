ALTER TABLE items DROP COLUMN suggested_provider;
--bun:split
ALTER TABLE items DROP COLUMN detected_by;
--bun:split
ALTER TABLE items DROP COLUMN anthropic_base_url;

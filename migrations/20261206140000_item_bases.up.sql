ALTER TABLE items ADD COLUMN anthropic_base_url TEXT NOT NULL DEFAULT '';
--bun:split
ALTER TABLE items ADD COLUMN detected_by VARCHAR(20) NOT NULL DEFAULT '';
--bun:split
ALTER TABLE items ADD COLUMN suggested_provider VARCHAR(40) NOT NULL DEFAULT '';

DROP TABLE resource_uses;
--bun:split
ALTER TABLE managed_resources DROP COLUMN origin;
--bun:split
ALTER TABLE items DROP COLUMN key_proof;
--bun:split
ALTER TABLE items DROP COLUMN target_group;

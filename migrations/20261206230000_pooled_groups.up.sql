ALTER TABLE items ADD COLUMN target_group VARCHAR(300) NOT NULL DEFAULT '';
--bun:split
ALTER TABLE items ADD COLUMN key_proof VARCHAR(30) NOT NULL DEFAULT '';
--bun:split
ALTER TABLE managed_resources ADD COLUMN origin VARCHAR(20) NOT NULL DEFAULT '';
--bun:split
UPDATE managed_resources SET origin = CASE WHEN resource_type = 'user' AND state = 'adopted' THEN 'found' ELSE 'created' END;
--bun:split
CREATE TABLE resource_uses (
    resource_id VARCHAR(40) NOT NULL REFERENCES managed_resources(id),
    batch_id    VARCHAR(40) NOT NULL,
    item_id     VARCHAR(40) NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (resource_id, item_id)
);
--bun:split
CREATE INDEX resource_uses_batch ON resource_uses (batch_id, resource_id);
--bun:split
INSERT INTO resource_uses (resource_id, batch_id, item_id, created_at)
SELECT id, batch_id, item_id, updated_at FROM managed_resources
WHERE state NOT IN ('deleted', 'missing') AND batch_id <> '' AND item_id <> '';
--bun:split
INSERT INTO resource_uses (resource_id, batch_id, item_id, created_at)
SELECT u.id, k.batch_id, k.item_id, k.updated_at
FROM managed_resources u JOIN managed_resources k ON k.host_id = u.host_id AND k.resource_type = 'key'
WHERE u.resource_type = 'user' AND u.state NOT IN ('deleted', 'missing') AND k.state NOT IN ('deleted', 'missing')
  AND k.item_id <> '' AND k.item_id <> u.item_id
ON CONFLICT DO NOTHING;

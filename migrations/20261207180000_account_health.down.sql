DROP TABLE notification_outbox;
--bun:split
DROP TABLE webhooks;
--bun:split
DROP TABLE host_settings;
--bun:split
DROP TABLE account_health;
--bun:split
DROP TABLE account_checks;
--bun:split
DROP TABLE verify_runs;

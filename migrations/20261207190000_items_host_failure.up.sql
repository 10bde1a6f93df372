-- Import steps ask whether the host's outbound policy refused an upstream before
-- (failed items of one host and failure class): without this index that read scanned
-- every item of the host, 10% of worker CPU at 1 000 items (issue 17).
CREATE INDEX items_host_failure ON items (host_id, failure_class, status);

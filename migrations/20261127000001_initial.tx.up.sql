CREATE TABLE hosts (
    id                 VARCHAR(40) PRIMARY KEY,
    name               VARCHAR(200) NOT NULL UNIQUE,
    admin_url          TEXT NOT NULL,
    public_url         TEXT NOT NULL,
    auth_kind          VARCHAR(20) NOT NULL,
    admin_key_enc      TEXT NOT NULL DEFAULT '',
    admin_key_masked   VARCHAR(40) NOT NULL DEFAULT '',
    admin_email        VARCHAR(320) NOT NULL DEFAULT '',
    admin_password_enc TEXT NOT NULL DEFAULT '',
    version            VARCHAR(40) NOT NULL DEFAULT '',
    profile            VARCHAR(40) NOT NULL DEFAULT '',
    status             VARCHAR(40) NOT NULL DEFAULT 'unknown',
    status_message     TEXT NOT NULL DEFAULT '',
    warnings           TEXT NOT NULL DEFAULT '[]',
    flags              TEXT NOT NULL DEFAULT '{}',
    probed_at          TIMESTAMP,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
--bun:split
CREATE TABLE batches (
    id          VARCHAR(40) PRIMARY KEY,
    host_id     VARCHAR(40) NOT NULL REFERENCES hosts(id),
    name        VARCHAR(200) NOT NULL DEFAULT '',
    mode        VARCHAR(20) NOT NULL,
    dry_run     BOOLEAN NOT NULL DEFAULT FALSE,
    force       BOOLEAN NOT NULL DEFAULT FALSE,
    options     TEXT NOT NULL DEFAULT '{}',
    status      VARCHAR(30) NOT NULL,
    item_count  INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
--bun:split
CREATE INDEX batches_host_created ON batches (host_id, created_at);
--bun:split
CREATE INDEX batches_status ON batches (status);
--bun:split
CREATE TABLE items (
    id               VARCHAR(40) PRIMARY KEY,
    batch_id         VARCHAR(40) NOT NULL REFERENCES batches(id),
    host_id          VARCHAR(40) NOT NULL REFERENCES hosts(id),
    idx              INTEGER NOT NULL,
    name             VARCHAR(200) NOT NULL,
    base_url         TEXT NOT NULL,
    normalized_url   TEXT NOT NULL DEFAULT '',
    provider_hint    VARCHAR(40) NOT NULL DEFAULT '',
    provider         VARCHAR(40) NOT NULL DEFAULT '',
    api_key_enc      TEXT NOT NULL,
    key_masked       VARCHAR(40) NOT NULL,
    key_fingerprint  VARCHAR(64) NOT NULL,
    requested_models TEXT NOT NULL DEFAULT '[]',
    corrections      TEXT NOT NULL DEFAULT '[]',
    models           TEXT NOT NULL DEFAULT '[]',
    smoke_model      VARCHAR(200) NOT NULL DEFAULT '',
    capability       TEXT NOT NULL DEFAULT '{}',
    plan             TEXT NOT NULL DEFAULT '{}',
    status           VARCHAR(30) NOT NULL,
    step             VARCHAR(30) NOT NULL DEFAULT '',
    seq              INTEGER NOT NULL DEFAULT 0,
    step_attempts    INTEGER NOT NULL DEFAULT 0,
    next_run_at      TIMESTAMP,
    window_deadline  TIMESTAMP,
    failure_class    VARCHAR(40) NOT NULL DEFAULT '',
    failure_message  TEXT NOT NULL DEFAULT '',
    warnings         TEXT NOT NULL DEFAULT '[]',
    account_status   VARCHAR(40) NOT NULL DEFAULT '',
    access_status    VARCHAR(40) NOT NULL DEFAULT '',
    smoke_preview    TEXT NOT NULL DEFAULT '',
    duplicate_of     VARCHAR(40) NOT NULL DEFAULT '',
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP
);
--bun:split
CREATE INDEX items_batch_idx ON items (batch_id, idx);
--bun:split
CREATE INDEX items_due ON items (status, next_run_at);
--bun:split
CREATE INDEX items_fingerprint ON items (host_id, key_fingerprint);
--bun:split
CREATE TABLE attempts (
    id          VARCHAR(40) PRIMARY KEY,
    item_id     VARCHAR(40) NOT NULL REFERENCES items(id),
    step        VARCHAR(30) NOT NULL,
    seq         INTEGER NOT NULL,
    number      INTEGER NOT NULL,
    outcome     VARCHAR(20) NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    failure_class VARCHAR(40) NOT NULL DEFAULT '',
    evidence    TEXT NOT NULL DEFAULT '[]',
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    UNIQUE (item_id, seq)
);
--bun:split
CREATE TABLE managed_resources (
    id               VARCHAR(40) PRIMARY KEY,
    host_id          VARCHAR(40) NOT NULL REFERENCES hosts(id),
    batch_id         VARCHAR(40) NOT NULL DEFAULT '',
    item_id          VARCHAR(40) NOT NULL DEFAULT '',
    resource_type    VARCHAR(30) NOT NULL,
    host_resource_id VARCHAR(64),
    name             VARCHAR(300) NOT NULL,
    idempotency_key  VARCHAR(200) NOT NULL DEFAULT '',
    state            VARCHAR(20) NOT NULL,
    secret_enc       TEXT NOT NULL DEFAULT '',
    parent_id        VARCHAR(64) NOT NULL DEFAULT '',
    details          TEXT NOT NULL DEFAULT '{}',
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    UNIQUE (host_id, resource_type, host_resource_id),
    UNIQUE (host_id, resource_type, name)
);
--bun:split
CREATE INDEX managed_resources_batch ON managed_resources (batch_id, resource_type);
--bun:split
CREATE TABLE reconcile_runs (
    id          VARCHAR(40) PRIMARY KEY,
    host_id     VARCHAR(40) NOT NULL REFERENCES hosts(id),
    batch_id    VARCHAR(40) NOT NULL DEFAULT '',
    slot        VARCHAR(60) NOT NULL DEFAULT '',
    status      VARCHAR(20) NOT NULL,
    findings    TEXT NOT NULL DEFAULT '[]',
    summary     TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
--bun:split
CREATE INDEX reconcile_runs_host ON reconcile_runs (host_id, started_at);

CREATE TABLE verify_runs (
    id               VARCHAR(40) PRIMARY KEY,
    host_id          VARCHAR(40) NOT NULL,
    slot             VARCHAR(60) NOT NULL DEFAULT '',
    status           VARCHAR(20) NOT NULL,
    accounts_total   INTEGER NOT NULL DEFAULT 0,
    accounts_checked INTEGER NOT NULL DEFAULT 0,
    healthy          INTEGER NOT NULL DEFAULT 0,
    degraded         INTEGER NOT NULL DEFAULT 0,
    failing          INTEGER NOT NULL DEFAULT 0,
    actions          INTEGER NOT NULL DEFAULT 0,
    spread_s         INTEGER NOT NULL DEFAULT 0,
    summary          TEXT NOT NULL DEFAULT '',
    deadline         TIMESTAMP,
    started_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP
);
--bun:split
CREATE INDEX verify_runs_host ON verify_runs (host_id, started_at);
--bun:split
CREATE UNIQUE INDEX verify_runs_slot ON verify_runs (host_id, slot) WHERE slot <> '';
--bun:split
CREATE UNIQUE INDEX verify_runs_running ON verify_runs (host_id) WHERE status = 'running';
--bun:split
CREATE TABLE account_checks (
    id               VARCHAR(40) PRIMARY KEY,
    run_id           VARCHAR(40) NOT NULL,
    host_id          VARCHAR(40) NOT NULL,
    batch_id         VARCHAR(40) NOT NULL DEFAULT '',
    item_id          VARCHAR(40) NOT NULL,
    resource_id      VARCHAR(40) NOT NULL DEFAULT '',
    host_account_id  VARCHAR(64) NOT NULL DEFAULT '',
    account_name     VARCHAR(300) NOT NULL DEFAULT '',
    provider         VARCHAR(40) NOT NULL DEFAULT '',
    state            VARCHAR(20) NOT NULL,
    due_at           TIMESTAMP NOT NULL,
    status           VARCHAR(20) NOT NULL DEFAULT '',
    class            VARCHAR(40) NOT NULL DEFAULT '',
    reason           TEXT NOT NULL DEFAULT '',
    direct           VARCHAR(20) NOT NULL DEFAULT '',
    host_view        TEXT NOT NULL DEFAULT '{}',
    balance_amount   DOUBLE PRECISION,
    balance_currency VARCHAR(10) NOT NULL DEFAULT '',
    balance_at       TIMESTAMP,
    balance_source   VARCHAR(80) NOT NULL DEFAULT '',
    balance_low      BOOLEAN NOT NULL DEFAULT FALSE,
    action           VARCHAR(30) NOT NULL DEFAULT '',
    action_detail    TEXT NOT NULL DEFAULT '{}',
    undo_state       VARCHAR(20) NOT NULL DEFAULT '',
    undo_detail      TEXT NOT NULL DEFAULT '',
    evidence         TEXT NOT NULL DEFAULT '[]',
    checked_at       TIMESTAMP,
    created_at       TIMESTAMP NOT NULL,
    UNIQUE (run_id, item_id)
);
--bun:split
CREATE INDEX account_checks_item ON account_checks (item_id, created_at);
--bun:split
CREATE INDEX account_checks_run ON account_checks (run_id, state, due_at);
--bun:split
CREATE TABLE account_health (
    item_id          VARCHAR(40) PRIMARY KEY,
    host_id          VARCHAR(40) NOT NULL,
    batch_id         VARCHAR(40) NOT NULL DEFAULT '',
    resource_id      VARCHAR(40) NOT NULL DEFAULT '',
    host_account_id  VARCHAR(64) NOT NULL DEFAULT '',
    account_name     VARCHAR(300) NOT NULL DEFAULT '',
    provider         VARCHAR(40) NOT NULL DEFAULT '',
    key_masked       VARCHAR(40) NOT NULL DEFAULT '',
    status           VARCHAR(20) NOT NULL,
    class            VARCHAR(40) NOT NULL DEFAULT '',
    reason           TEXT NOT NULL DEFAULT '',
    since            TIMESTAMP NOT NULL,
    fail_streak      INTEGER NOT NULL DEFAULT 0,
    parked           BOOLEAN NOT NULL DEFAULT FALSE,
    hold             BOOLEAN NOT NULL DEFAULT FALSE,
    balance_amount   DOUBLE PRECISION,
    balance_currency VARCHAR(10) NOT NULL DEFAULT '',
    balance_at       TIMESTAMP,
    balance_low      BOOLEAN NOT NULL DEFAULT FALSE,
    recent           VARCHAR(40) NOT NULL DEFAULT '',
    last_check_id    VARCHAR(40) NOT NULL DEFAULT '',
    last_action      VARCHAR(30) NOT NULL DEFAULT '',
    checked_at       TIMESTAMP NOT NULL
);
--bun:split
CREATE INDEX account_health_host ON account_health (host_id, status);
--bun:split
CREATE TABLE host_settings (
    host_id      VARCHAR(40) PRIMARY KEY,
    auto_recover BOOLEAN NOT NULL DEFAULT FALSE,
    park_failing BOOLEAN NOT NULL DEFAULT FALSE,
    low_balance  DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at   TIMESTAMP NOT NULL
);
--bun:split
CREATE TABLE webhooks (
    id          VARCHAR(40) PRIMARY KEY,
    host_id     VARCHAR(40) NOT NULL,
    name        VARCHAR(200) NOT NULL DEFAULT '',
    format      VARCHAR(20) NOT NULL,
    url_enc     TEXT NOT NULL,
    url_shown   VARCHAR(300) NOT NULL DEFAULT '',
    secret_enc  TEXT NOT NULL DEFAULT '',
    lang        VARCHAR(5) NOT NULL DEFAULT 'en',
    events      TEXT NOT NULL DEFAULT '[]',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
--bun:split
CREATE INDEX webhooks_host ON webhooks (host_id);
--bun:split
CREATE TABLE notification_outbox (
    id          VARCHAR(40) PRIMARY KEY,
    event_id    VARCHAR(200) NOT NULL,
    webhook_id  VARCHAR(40) NOT NULL,
    host_id     VARCHAR(40) NOT NULL,
    event_type  VARCHAR(40) NOT NULL,
    payload     TEXT NOT NULL,
    state       VARCHAR(20) NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    last_error  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    UNIQUE (event_id, webhook_id)
);
--bun:split
CREATE INDEX notification_outbox_due ON notification_outbox (state, next_at);

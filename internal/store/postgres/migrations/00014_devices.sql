-- Issue 14 (device identity). Device trust profiles: which device PKIs
-- (CBRS or generic X.509) this server trusts and what their tokens hold;
-- and delegations: the devices a domain proxy may obtain tokens for.
-- Same conventions as 00001_init.sql: string lists are JSON arrays in
-- TEXT, durations BIGINT nanoseconds, times BIGINT unix microseconds,
-- booleans INTEGER 0/1; policy is the JSON text of a store.Policy.

-- +goose Up
CREATE TABLE device_profiles (
    name          TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL,
    anchors       BYTEA,
    identity      TEXT    NOT NULL DEFAULT '',
    eku           TEXT    NOT NULL DEFAULT '',
    crl_files     TEXT    NOT NULL DEFAULT '[]',
    ocsp_url      TEXT    NOT NULL DEFAULT '',
    fcc_ids       TEXT    NOT NULL DEFAULT '[]',
    audiences     TEXT    NOT NULL DEFAULT '[]',
    scopes        TEXT    NOT NULL DEFAULT '[]',
    policy        TEXT    NOT NULL DEFAULT '',
    token_ttl     BIGINT  NOT NULL DEFAULT 0,
    max_batch     INTEGER NOT NULL DEFAULT 0,
    enabled       INTEGER NOT NULL DEFAULT 0,
    from_config   INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL DEFAULT 0,
    updated_at    BIGINT  NOT NULL DEFAULT 0
);

-- One row per (domain proxy, device): the batch endpoint looks up to 512
-- devices of one proxy by this key in one query. The key columns collate
-- as "C", so that the lists, ordered by bytes as on SQLite, read the
-- indexes in order instead of sorting.
CREATE TABLE delegations (
    proxy       TEXT   COLLATE "C" NOT NULL,
    fcc_id      TEXT   COLLATE "C" NOT NULL,
    serial      TEXT   COLLATE "C" NOT NULL,
    account_id  TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (proxy, fcc_id, serial)
);
-- An account's delegations, listed in key order.
CREATE INDEX delegations_account ON delegations (account_id, proxy, fcc_id, serial);

-- +goose Down
DROP TABLE delegations;
DROP TABLE device_profiles;

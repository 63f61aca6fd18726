-- The initial schema, translated from the SQLite backend's 00001_init.sql:
-- the same tables, columns, encodings (package sqlcodec) and indexes, so
-- that the two differ only in type names (BYTEA for BLOB) and the audit id
-- column (an identity column for SQLite's rowid). Times are BIGINT unix
-- microseconds UTC with 0 for the zero time, string lists are JSON arrays in
-- TEXT, booleans INTEGER 0/1, durations BIGINT nanoseconds.

-- +goose Up
CREATE TABLE clients (
    id                     TEXT    NOT NULL PRIMARY KEY,
    name                   TEXT    NOT NULL,
    secret_hash            BYTEA,
    prev_secret_hash       BYTEA,
    prev_secret_expires_at BIGINT  NOT NULL DEFAULT 0,
    status                 TEXT    NOT NULL,
    grant_types            TEXT    NOT NULL DEFAULT '[]',
    audiences              TEXT    NOT NULL DEFAULT '[]',
    scopes                 TEXT    NOT NULL DEFAULT '[]',
    token_format           TEXT    NOT NULL,
    allow_impersonation    INTEGER NOT NULL DEFAULT 0,
    access_token_ttl       BIGINT  NOT NULL DEFAULT 0,
    refresh_token_ttl      BIGINT  NOT NULL DEFAULT 0,
    created_at             BIGINT  NOT NULL DEFAULT 0,
    updated_at             BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX clients_created_at ON clients (created_at);

CREATE TABLE signing_keys (
    id           TEXT   NOT NULL PRIMARY KEY,
    algorithm    TEXT   NOT NULL,
    state        TEXT   NOT NULL,
    private_key  BYTEA,
    public_key   BYTEA,
    created_at   BIGINT NOT NULL DEFAULT 0,
    activated_at BIGINT NOT NULL DEFAULT 0,
    retired_at   BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL DEFAULT 0
);
-- At most one key signs and at most one waits to: RotateKeys relies on it.
CREATE UNIQUE INDEX signing_keys_one_per_state ON signing_keys (state)
    WHERE state IN ('current', 'next');

CREATE TABLE tokens (
    hash        BYTEA  NOT NULL PRIMARY KEY,
    kind        TEXT   NOT NULL,
    jti         TEXT   NOT NULL,
    client_id   TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    scope       TEXT   NOT NULL,
    audience    TEXT   NOT NULL DEFAULT '[]',
    actor       BYTEA,
    family_id   TEXT   NOT NULL,
    issued_at   BIGINT NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT NOT NULL DEFAULT 0,
    consumed_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_family_id ON tokens (family_id);
CREATE INDEX tokens_expires_at ON tokens (expires_at);

CREATE TABLE revoked_jtis (
    jti        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_jtis_revoked_at ON revoked_jtis (revoked_at);
CREATE INDEX revoked_jtis_expires_at ON revoked_jtis (expires_at);

CREATE TABLE audit (
    -- Increasing in append order (audit rows are never deleted); ALWAYS, so
    -- that no insert can choose its own id.
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       BIGINT  NOT NULL,
    action     TEXT    NOT NULL,
    decision   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    audience   TEXT    NOT NULL DEFAULT '[]',
    jti        TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    remote     TEXT    NOT NULL
);
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_client_id_time ON audit (client_id, time);

-- +goose Down
DROP TABLE audit;
DROP TABLE revoked_jtis;
DROP TABLE tokens;
DROP TABLE signing_keys;
DROP TABLE clients;

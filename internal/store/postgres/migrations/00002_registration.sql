-- Account-based registration, translated from the SQLite backend's
-- 00002_registration.sql: the clients' registration columns, the account of
-- an audit record, and the tables of accounts, organization certificates,
-- single-use token identifiers, portal operators and portal sessions. Every
-- new column of an existing table has a default, so that existing rows stay
-- valid.

-- +goose Up
ALTER TABLE clients ADD COLUMN account_id              TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN auth_method             TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN software_id             TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN software_version        TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN hardware_address        TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN registration_token_hash BYTEA;
ALTER TABLE clients ADD COLUMN metadata                BYTEA;
-- ListAccountClients: one account's clients in creation order.
CREATE INDEX clients_account_id ON clients (account_id, created_at);

ALTER TABLE audit ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_account_id_time ON audit (account_id, time);

CREATE TABLE accounts (
    id            TEXT   NOT NULL PRIMARY KEY,
    kind          TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    shared_secret BYTEA,
    audiences     TEXT   NOT NULL DEFAULT '[]',
    scopes        TEXT   NOT NULL DEFAULT '[]',
    created_at    BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX accounts_created_at ON accounts (created_at);

-- The id is the certificate's thumbprint, unique across accounts so that a
-- kid names one certificate.
CREATE TABLE certificates (
    id          TEXT   NOT NULL PRIMARY KEY,
    account_id  TEXT   NOT NULL,
    der         BYTEA,
    private_key BYTEA,
    not_before  BIGINT NOT NULL DEFAULT 0,
    not_after   BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX certificates_account_id ON certificates (account_id);

CREATE TABLE used_jtis (
    issuer     TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX used_jtis_expires_at ON used_jtis (expires_at);

CREATE TABLE operators (
    username      TEXT   NOT NULL PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    hash       BYTEA  NOT NULL PRIMARY KEY,
    subject    TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
DROP TABLE operators;
DROP TABLE used_jtis;
DROP TABLE certificates;
DROP TABLE accounts;

DROP INDEX audit_account_id_time;
ALTER TABLE audit DROP COLUMN account_id;

DROP INDEX clients_account_id;
ALTER TABLE clients DROP COLUMN metadata;
ALTER TABLE clients DROP COLUMN registration_token_hash;
ALTER TABLE clients DROP COLUMN hardware_address;
ALTER TABLE clients DROP COLUMN software_version;
ALTER TABLE clients DROP COLUMN software_id;
ALTER TABLE clients DROP COLUMN auth_method;
ALTER TABLE clients DROP COLUMN account_id;

-- Issue 11 (federation). Trusted issuers: other issuers whose tokens this
-- server accepts as subject or actor tokens (RFC 8693) and as JWT bearer
-- assertions (RFC 7523). Same conventions as 00001_init.sql: string lists
-- are JSON arrays in TEXT, durations BIGINT nanoseconds, times BIGINT unix
-- microseconds, booleans INTEGER 0/1; policy is the JSON text of a
-- store.Policy ('' when it has no rule). Clients get their policy column,
-- with a default so that existing rows stay valid.

-- +goose Up
CREATE TABLE trusted_issuers (
    name                          TEXT    NOT NULL PRIMARY KEY,
    issuer                        TEXT    NOT NULL,
    enabled                       INTEGER NOT NULL DEFAULT 0,
    source                        TEXT    NOT NULL,
    jwks_uri                      TEXT    NOT NULL DEFAULT '',
    jwks                          BYTEA,
    introspection_endpoint        TEXT    NOT NULL DEFAULT '',
    introspection_client_id       TEXT    NOT NULL DEFAULT '',
    introspection_client_secret   TEXT    NOT NULL DEFAULT '',
    token_types                   TEXT    NOT NULL DEFAULT '[]',
    algorithms                    TEXT    NOT NULL DEFAULT '[]',
    audiences                     TEXT    NOT NULL DEFAULT '[]',
    max_age                       BIGINT  NOT NULL DEFAULT 0,
    leeway                        BIGINT  NOT NULL DEFAULT 0,
    clients                       TEXT    NOT NULL DEFAULT '[]',
    subject_prefix                TEXT    NOT NULL DEFAULT '',
    policy                        TEXT    NOT NULL DEFAULT '',
    allow_http                    INTEGER NOT NULL DEFAULT 0,
    created_at                    BIGINT  NOT NULL DEFAULT 0,
    updated_at                    BIGINT  NOT NULL DEFAULT 0
);
-- A token names its issuer by iss: one trusted issuer per iss value.
CREATE UNIQUE INDEX trusted_issuers_issuer ON trusted_issuers (issuer);

ALTER TABLE clients ADD COLUMN policy TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE clients DROP COLUMN policy;
DROP TABLE trusted_issuers;

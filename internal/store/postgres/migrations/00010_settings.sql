-- What `sts serve` tells the operator tools about itself (its issuer and
-- listen address), so that CLI commands run against the same data default
-- to the server's values instead of their own defaults.

-- +goose Up
CREATE TABLE settings (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE settings;

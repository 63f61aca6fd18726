-- The registration identity of a client within its account (software_id
-- and hardware_address, else client_name), unique per account when not
-- empty, so that instances sharing the database cannot register one
-- identity twice. Existing rows get the empty identity, which the index
-- leaves out, so the migration cannot fail on them.

-- +goose Up
ALTER TABLE clients ADD COLUMN identity TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX clients_account_identity ON clients (account_id, identity) WHERE identity <> '';

-- +goose Down
-- A column cannot be dropped while an index uses it.
DROP INDEX clients_account_identity;
ALTER TABLE clients DROP COLUMN identity;

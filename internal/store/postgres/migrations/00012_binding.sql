-- Issue 13 (proof of possession). A client's binding registration
-- (certificate names, public keys, bound-token settings) is the JSON text
-- of a store.Binding ('' when it registers nothing); a stored token's cnf
-- is the JSON of its RFC 7800 confirmation claim (NULL for bearer tokens).
-- Defaults keep existing rows valid.

-- +goose Up
ALTER TABLE clients ADD COLUMN binding TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN cnf BYTEA;

-- +goose Down
ALTER TABLE tokens DROP COLUMN cnf;
ALTER TABLE clients DROP COLUMN binding;

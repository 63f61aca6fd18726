-- Issue 8 (hardening). Clients: the resource URIs a client serves as a
-- resource server (subject tokens and introspection addressed to it), two
-- operator grants (exchange any subject token; introspect any token), the
-- claims of the initial access token that registered the client (compared on
-- every re-registration), and when the RFC 7592 registration access token
-- expires (0: never, for rows written before this migration). Audit: how
-- many identical refusals one record stands for (coalescing).

-- +goose Up
ALTER TABLE clients ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN exchange_any INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN introspect_any INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN iat_claims BLOB;
ALTER TABLE clients ADD COLUMN registration_token_expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE audit DROP COLUMN count;
ALTER TABLE clients DROP COLUMN registration_token_expires_at;
ALTER TABLE clients DROP COLUMN iat_claims;
ALTER TABLE clients DROP COLUMN introspect_any;
ALTER TABLE clients DROP COLUMN exchange_any;
ALTER TABLE clients DROP COLUMN resources;

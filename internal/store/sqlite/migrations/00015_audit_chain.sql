-- Issue 15 (operations): a tamper-evident audit trail. Each record belongs
-- to a chain (one per writer: the store's host), has the next sequence
-- number of its chain and the SHA-256 hash of its content and of the hash
-- of the record before it (internal/audit.ChainHash). audit_chains holds
-- each chain's head (updated in the transaction that appends) and its
-- anchor: the sequence number and hash of the last record retention pruned.
-- Rows written before this migration have chain '' and are reported as
-- unchained; the setting audit.chain.unchained_max_id is the greatest id
-- among them, so that a row without a chain written later is an insertion.

-- +goose Up
ALTER TABLE audit ADD COLUMN chain TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX audit_chain_seq ON audit (chain, seq) WHERE chain <> '';
CREATE INDEX audit_unchained ON audit (id) WHERE chain = '';
CREATE TABLE audit_chains (
    chain       TEXT    NOT NULL PRIMARY KEY,
    version     INTEGER NOT NULL,
    seq         BIGINT  NOT NULL,
    hash        TEXT    NOT NULL,
    anchor_seq  BIGINT  NOT NULL DEFAULT 0,
    anchor_hash TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
INSERT INTO settings (name, value, updated_at)
SELECT 'audit.chain.unchained_max_id', CAST(COALESCE(MAX(id), 0) AS TEXT), 0 FROM audit;

-- +goose Down
DELETE FROM settings WHERE name = 'audit.chain.unchained_max_id';
DROP TABLE audit_chains;
DROP INDEX audit_unchained;
DROP INDEX audit_chain_seq;
ALTER TABLE audit DROP COLUMN hash;
ALTER TABLE audit DROP COLUMN seq;
ALTER TABLE audit DROP COLUMN chain;

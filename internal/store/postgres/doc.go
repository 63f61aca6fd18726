// Package postgres is the PostgreSQL backend of [store.Store], built on
// pgx (github.com/jackc/pgx/v5) and its pool, for several sts instances
// sharing one database. Every table's code is package sqlstore's, shared
// with SQLite, run here on a small executor straight over pgx (pgx.go) with
// PostgreSQL's dialect: $n placeholders and COLLATE "C" where text is
// ordered, SELECT … FOR UPDATE in read-modify-writes and a table lock for
// key rotation (where SQLite's single writer serialises), and pgx's errors.
//
// This package owns what is PostgreSQL's alone: the schema and its embedded
// goose migrations (applied by [Open] under a session advisory lock, so
// that instances starting at once migrate once, in the first schema of the
// search path, which is how tests isolate themselves), the LISTEN/NOTIFY
// change feed (the shared code calls [Store]'s notify hook inside the
// transaction of each write of clients, accounts, revocations and keys, so
// a notice is heard on commit and never after a rollback), and the
// advisory-lock elections.
//
// The schema is the SQLite one translated (see migrations/; a test in
// package sqlstore compares the two): the same tables, columns, indexes and
// encodings (package sqlcodec), with BYTEA for BLOB and an identity column
// for the audit id.
//
// The hot-path reads (GetClient, GetToken, IsRevoked) are single primary-key
// queries whose prepared statements pgx caches on each connection.
package postgres

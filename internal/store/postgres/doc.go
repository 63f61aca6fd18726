// Package postgres is the PostgreSQL backend of [store.Store], built on
// pgx (github.com/jackc/pgx/v5) and its pool, for several sts instances
// sharing one database. It owns the PostgreSQL schema and its embedded goose
// migrations (applied by [Open] under a session advisory lock, so that
// instances starting at once migrate once), the transactions and locks that
// give each method the semantics of the SQLite backend. The mapping between
// the records of package store and rows, and the query text the two backends
// share, are package sqlrows'. It passes the conformance suite in
// internal/store/storetest.
//
// The schema is the SQLite one translated (see migrations/): the same
// tables, columns, indexes and encodings (package sqlcodec: times as BIGINT
// unix microseconds UTC, string lists as JSON text, booleans INTEGER 0/1,
// durations BIGINT nanoseconds), with BYTEA for BLOB and an identity column
// for the audit id. The differences of dialect in shared query text — $n
// placeholders, and COLLATE "C" where text is ordered, so that lists come
// out in SQLite's (byte) order whatever the database's collation — are
// sqlrows.PostgreSQL, applied once at package initialisation; FOR UPDATE
// row locks and a table lock, where SQLite's single writer serialises, stay
// in this package.
//
// The hot-path reads (GetClient, GetToken, IsRevoked) are single primary-key
// queries whose prepared statements pgx caches on each connection.
package postgres

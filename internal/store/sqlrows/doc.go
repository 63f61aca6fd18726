// Package sqlrows is what the SQL backends (SQLite and PostgreSQL) share
// above the column encodings of
// [github.com/keybridge/sts/internal/store/sqlcodec]: the column lists of the
// tables, the functions that turn a record into the values of a row and a
// row back into a record, and the text of the queries that differ between
// the two only in their placeholders and collations.
//
// The dialect differences in that text are here and only here ([Dialect]):
// a backend builds its [Queries] once, at package initialisation, so that
// no query is rewritten per request. What differs in behaviour — transactions,
// locking (SELECT … FOR UPDATE, LOCK TABLE), error mapping, migrations —
// stays in each backend.
package sqlrows

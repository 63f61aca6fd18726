// Package sqlrows is what the SQL backends (SQLite and PostgreSQL) share
// above the column encodings of
// [github.com/keybridge/sts/internal/store/sqlcodec]: the column lists of the
// tables, the functions that turn a record into the values of a row and a
// row back into a record, and the text of the queries that differ between
// the two only in their placeholders and collations.
//
// The dialect differences in that text are here and only here ([Dialect]):
// package sqlstore builds a store's [Queries] once, when a backend opens it,
// so that no query is rewritten per request. The statements that run them, in their
// transactions, are package sqlstore's; what differs in behaviour (locking,
// error classification) is its Dialect, and migrations are each backend's.
package sqlrows

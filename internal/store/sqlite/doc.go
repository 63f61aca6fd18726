// Package sqlite is the SQLite backend of [store.Store], built on the pure-Go
// driver modernc.org/sqlite. It owns the SQLite schema and its embedded goose
// migrations (applied by [Open]), the connection settings (WAL, busy timeout,
// immediate write transactions) and the transactions; the mapping between
// the records of package store and rows, and the query text both backends
// share, are package sqlrows'. It passes the conformance suite in
// internal/store/storetest.
//
// Writes go through a pool of one connection, so concurrent writers queue in
// Go instead of sleeping in SQLite's busy handler; reads use a separate
// read-only pool and, thanks to WAL, never wait for a writer. The busy
// timeout still matters when another process (the CLI, say) writes to the
// same file.
//
// Values are encoded as the PostgreSQL backend encodes them (see package
// sqlcodec): times as BIGINT unix microseconds UTC with 0 for the zero time,
// string lists as JSON text, booleans as INTEGER 0/1, durations as BIGINT
// nanoseconds. A time is therefore stored to the microsecond, and the Unix
// epoch itself reads back as the zero time.
package sqlite

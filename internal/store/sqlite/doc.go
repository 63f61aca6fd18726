// Package sqlite is the SQLite backend of [store.Store], built on the pure-Go
// driver modernc.org/sqlite. Every table's code is package sqlstore's, shared
// with PostgreSQL; this package owns what is SQLite's alone: the schema and
// its embedded goose migrations (applied by [Open]), the connection settings
// (WAL, checkpointing, busy timeout, immediate write transactions), the file
// modes, and the two pools the shared code runs on. It passes the
// conformance suite in internal/store/storetest.
//
// Writes and transactions go through a pool of one connection, so
// concurrent writers queue in Go instead of sleeping in SQLite's busy
// handler; reads use a separate read-only pool and, thanks to WAL, never
// wait for a writer. The busy timeout still matters when another process
// (the CLI, say) writes to the same file. The reads of the token
// endpoint's hot path (GetClient, GetToken, IsRevoked) are statements
// prepared once, at Open, on the read pool.
//
// Values are encoded as the PostgreSQL backend encodes them (see package
// sqlcodec): times as BIGINT unix microseconds UTC with 0 for the zero time,
// string lists as JSON text, booleans as INTEGER 0/1, durations as BIGINT
// nanoseconds. A time is therefore stored to the microsecond, and the Unix
// epoch itself reads back as the zero time.
package sqlite

// Package sqlstore is the one implementation of [store.Store] over SQL that
// the SQLite and PostgreSQL backends share, in the shape of dex's
// storage/sql: every table's code is written once here, over a small
// [Executor] (exec, query-row, query, and a batch of one statement), with a
// [Dialect] holding what truly differs between the databases — placeholder
// style and collations (through package sqlrows), how a read-modify-write
// locks what it reads (SELECT … FOR UPDATE, LOCK TABLE, or nothing under
// SQLite's BEGIN IMMEDIATE), which errors mean "no row", "unique violation"
// or "run the transaction again".
//
// A backend package owns its connections and gives the [Store] three of
// them ([Config]): the executor of single-statement reads, the executor of
// single-statement writes, and the function that runs a transaction. It
// also owns what is its own alone: migrations, connection settings, and —
// for PostgreSQL — the change feed, whose notifications the Store sends
// through the [Config.OnChange] hook inside the transaction of the write
// they announce.
//
// The column lists, scans and query text are package sqlrows'; the column
// encodings package sqlcodec's. This package adds the behaviour: which
// statements run, in which transaction, and how their errors map to
// store.ErrNotFound and store.ErrConflict. It is apart from sqlrows because
// sqlrows is text and mapping, tested without a database, while this one
// runs statements; it is tested through both backends, by the conformance
// suite (storetest.Run) and the migration suite (storetest.RunMigrations).
//
// The executor of database/sql ([SQLExecutor], [SQLInTx]) is here, as any
// database/sql driver can use it; the pgx one is the PostgreSQL backend's,
// which keeps pgx without database/sql in between.
package sqlstore

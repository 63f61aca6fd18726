// Package storetest is the conformance suite every [store.Store] backend
// runs: one call to [Run] from the backend's tests. It owns the executable
// definition of the contracts written in package store's doc comments —
// sentinel errors, atomicity of the compare-and-swap operations under real
// concurrency, replay detection, expiry boundaries, ordering and limits — so
// that SQLite and PostgreSQL cannot drift apart.
package storetest

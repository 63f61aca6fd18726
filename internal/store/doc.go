// Package store defines what the STS keeps: clients, signing keys, opaque
// and refresh tokens (as hashes), revoked JWT identifiers and audit records.
// It holds the interfaces, plain record structs and sentinel errors; the
// SQL backends (sqlite, postgres) share one implementation of every table,
// package sqlstore, and all of them pass the one conformance suite in
// storetest.
//
// A store stores; it does not decide. Operations that must be atomic are
// named after the invariant they keep (RotateKeys, RotateRefreshToken,
// RevokeFamily) or take an updater function applied under a transaction.
package store

// Package keys owns the server's signing keys: generating them, encrypting
// private keys at rest under a key-encryption key (KEK), rotating them on a
// schedule and on demand, and publishing the JWK set (current, next and
// recently retired keys).
//
// A [Manager] keeps an immutable in-memory snapshot of the keys so that
// signing and verification on the token endpoint's hot path need no
// database query; the snapshot is reloaded periodically and on an unknown
// key id, so keys rotated by another process (the CLI, another instance) are
// picked up.
package keys

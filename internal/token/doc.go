// Package token mints and validates the tokens this server issues: signed
// JWTs (access tokens with typ at+jwt per RFC 9068, and plain JWTs for
// requested_token_type jwt) and opaque reference tokens (access and refresh),
// which are stored only as SHA-256 hashes.
//
// Validation is strict and explicit: an algorithm allow-list, the algorithm
// fixed by the key the kid names, iss, exp, nbf and jti required and checked
// here (not left to a library default), and revocation consulted.
package token

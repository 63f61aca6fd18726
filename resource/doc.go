// Package resource verifies OAuth 2.0 access tokens for resource servers:
// the services that receive a token from a caller and must decide whether
// to serve it.
//
// A [Verifier] checks JWT access tokens (RFC 9068,
// https://www.rfc-editor.org/rfc/rfc9068) offline against the issuer's JWK
// set, which it fetches from jwks_uri, caches per the response's
// Cache-Control, and fetches again, at most once per
// [Config.MinRefreshInterval], when a token names a key id it does not
// know (so a key rotated in by the issuer is accepted without a restart).
// Every token must pass an algorithm allow-list (ES256, EdDSA and RS256 by
// default; "none" and HMAC algorithms are never accepted), carry the header
// "typ: at+jwt", and have the configured issuer, the configured audience, an
// expiry in the future and a not-before in the past; these claims are
// required, not merely checked when present.
//
// Opaque tokens (anything that is not three dot-separated parts, such as
// Key Bridge STS's "sts_at_..." tokens) are checked by RFC 7662 token
// introspection (https://www.rfc-editor.org/rfc/rfc7662) when
// [Config.Introspection] is set; answers are cached in a bounded cache, each
// no longer than [IntrospectionConfig.CacheTTL] and never beyond the
// token's expiry.
//
// The verified [Claims] give access to scope, client_id and the delegation
// chain of the "act" claim (RFC 8693 §4.1). [Verifier.Middleware] wraps a
// net/http handler: it answers a missing or invalid token with 401 and
// WWW-Authenticate: Bearer error="invalid_token", a missing scope with 403
// and error="insufficient_scope" (RFC 6750 §3,
// https://www.rfc-editor.org/rfc/rfc6750#section-3), and otherwise passes
// the claims to the handler through the request context
// ([ClaimsFromContext]).
//
// Sender-constrained tokens are checked too ([Verifier.VerifyRequest]): a
// token bound to a client certificate (cnf x5t#S256, RFC 8705 §3) only
// over a connection with that certificate (or from a trusted proxy's
// certificate header), and a token bound to a DPoP key (cnf jkt, RFC 9449
// §7) only with the DPoP scheme and a fresh proof of that key for the
// request and the token, answered with WWW-Authenticate: DPoP challenges.
//
// The package works with any issuer of RFC 9068 tokens; it is written and
// tested against Key Bridge STS.
package resource

// Package register is dynamic client registration: RFC 7591 (POST
// /register, authorised by an initial access token of an active account)
// and RFC 7592 management (GET, PUT, DELETE /register/{client_id} with the
// registration access token).
//
// A registration runs: initial access token (signature, account, lifetime;
// not yet spent; a request without a valid one counts against its source
// address's limit, and beyond it is 429) → per-account rate limit → body
// → software statement → metadata → account bounds and per-scope IAT
// claims → the client of the same identity, if the account has one, and
// the proof of continuity a re-registration needs (its registration
// access token, or an IAT whose claims name it; the claims it was
// registered with are compared) → the IAT's jti is spent → the client is
// created, or re-registered with a new secret and registration access
// token. So a typo in the metadata or a refused re-registration does not
// burn the IAT, and every change goes through the clients.Registry, which
// audits it.
//
// The identity (software_id and hardware_address, else client_name) is
// stored with the client, unique per account in the database, so that
// instances sharing one cannot register an identity twice: the one that
// loses the race re-registers the other's client, when it has the proof.
//
// The client metadata of RFC 7591 §2 that applies to a server without an
// authorization endpoint is accepted (client_name and the other
// human-readable members with language tags, grant_types,
// token_endpoint_auth_method, scope, contacts, jwks or jwks_uri,
// software_id, software_version, software_statement), the key-based
// client metadata of RFC 8705 (token_endpoint_auth_method tls_client_auth
// or self_signed_tls_client_auth, tls_client_auth_subject_dn and _san_*,
// tls_client_certificate_bound_access_tokens), RFC 7523 (private_key_jwt
// with jwks or jwks_uri) and RFC 9449 (dpop_bound_access_tokens); a
// key-based client gets no secret. Plus Key Bridge's
// extensions: hardware_address, extended_parameters, audiences,
// token_format, allow_impersonation, access_token_ttl, refresh_token_ttl,
// and, in an RFC 7592 update, rotate_secret; a re-registration may carry
// registration_access_token. Unknown members are ignored (§2).
package register

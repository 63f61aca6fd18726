// Package stsclient is a Go client for OAuth 2.0 Token Exchange
// (RFC 8693, https://www.rfc-editor.org/rfc/rfc8693) that works against any
// conforming authorization server, Key Bridge STS among them.
//
// A [Client] knows one token endpoint and the client's credentials. Its
// [Client.Exchange] method sends one token-exchange request, with a typed
// field for every RFC 8693 §2.1 parameter, and returns the typed
// [ExchangeResponse] of §2.2.1 or an [*Error] carrying the OAuth error
// code, description and HTTP status of §2.2.2.
//
// [Client.TokenSource] returns an [oauth2.TokenSource] (package
// golang.org/x/oauth2) that takes the subject token from another token
// source, exchanges it, and reuses the result until shortly before it
// expires, so that an [oauth2.Transport] or [oauth2.NewClient] can call a
// backend with exchanged tokens.
//
// [Discover] reads the authorization server metadata (RFC 8414,
// https://www.rfc-editor.org/rfc/rfc8414) to find the token endpoint.
// Client authentication is client_secret_basic with the form-url-encoding
// of RFC 6749 §2.3.1 (https://www.rfc-editor.org/rfc/rfc6749#section-2.3.1)
// that many clients forget ([oauth.BasicAuth]), client_secret_post,
// tls_client_auth or self_signed_tls_client_auth (RFC 8705 §2: the client
// certificate of [Client.HTTPClient]), or private_key_jwt (RFC 7523 §2.2:
// a fresh client assertion signed by [Client.AssertionKey] for every
// request).
//
// With [Client.DPoPKey], token requests carry DPoP proofs (RFC 9449), so
// that the issued tokens are bound to that key; [Client.Transport]
// presents them to resource servers with a proof per request.
//
// The wire vocabulary (grant and token-type URNs, error codes, response
// structures) comes from package [github.com/keybridge/sts/oauth].
package stsclient

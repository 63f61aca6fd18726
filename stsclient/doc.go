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
// that many clients forget ([oauth.BasicAuth]), or client_secret_post.
//
// The wire vocabulary (grant and token-type URNs, error codes, response
// structures) comes from package [github.com/keybridge/sts/oauth].
package stsclient

// Package oauth is the wire vocabulary shared by the Key Bridge STS server and
// its Go clients: grant types, token-type URNs, client authentication methods,
// error codes, the [Error] value, and the JSON structures of the token,
// introspection and metadata responses.
//
// It has no dependencies beyond the standard library so that any client or
// resource server can import it.
//
// References:
//   - RFC 6749, The OAuth 2.0 Authorization Framework: https://www.rfc-editor.org/rfc/rfc6749
//   - RFC 8693, OAuth 2.0 Token Exchange: https://www.rfc-editor.org/rfc/rfc8693
//   - RFC 7662, OAuth 2.0 Token Introspection: https://www.rfc-editor.org/rfc/rfc7662
//   - RFC 7009, OAuth 2.0 Token Revocation: https://www.rfc-editor.org/rfc/rfc7009
//   - RFC 8414, OAuth 2.0 Authorization Server Metadata: https://www.rfc-editor.org/rfc/rfc8414
package oauth

// Package token is the token endpoint, POST /token/oauth2: request parsing,
// the Grant interface with its three grants (token exchange, RFC 8693;
// client credentials, RFC 6749 §4.4; refresh, RFC 6749 §6), and the one
// shared pipeline every grant runs through:
//
//  1. parse the form (method, content type, size, repeated parameters);
//  2. authenticate the client;
//  3. find the grant and check the client may use it;
//  4. the grant's own part: validate what it was given, name the subject;
//  5. policy: scope, audience/resource, lifetime, token type;
//  6. mint, audit, and answer with the no-store headers.
package token

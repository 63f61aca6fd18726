// Package account owns accounts (individual or organization) and their
// initial access tokens (IATs): creating accounts and their shared secrets,
// issuing and accepting organization certificates, and minting and
// verifying the compact signed JWTs that authorise dynamic client
// registration (RFC 7591 §3: "initial access token").
//
// An individual account signs its IATs with its shared secret (HS256); an
// organization with the private key of one of its X.509 certificates (RS256
// or ES256). The verifier allows exactly the algorithms of the account's key
// type, checks the certificate's validity period, the audience, a short
// lifetime and single use of each jti, and refuses IATs of accounts that are
// not active.
package account

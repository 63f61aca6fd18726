// Package examples holds runnable programs that tell the seed's story with
// the public packages [github.com/keybridge/sts/stsclient] and
// [github.com/keybridge/sts/resource]:
//
//   - resource-server plays https://backend.example.com/api: it verifies the
//     tokens issued by the STS (JWTs offline against the JWK set, opaque
//     tokens by introspection) and answers with what it learnt from them;
//   - exchange plays rs08, the resource server that "assumes the role of
//     the client": it verifies a caller's token, exchanges it for the
//     backend's audience (RFC 8693), and calls the backend with the result;
//   - sas plays a spectrum access system: it accepts only radio devices'
//     tokens bound to the certificate the caller presents (a CBSD's own,
//     or its domain proxy's).
//
// Each keeps its HTTP logic in an importable package (resource-server/backend,
// exchange/gateway, sas/sasapi) so that internal/e2e runs the same code in-process.
package examples

// Package issuers is the one place that checks and manages trusted issuers
// (store.TrustedIssuer): the issuers whose tokens this server accepts as
// RFC 8693 subject and actor tokens and as RFC 7523 JWT bearer assertions.
// The CLI (`sts issuer`), the configuration file's issuers list and the
// portal all go through it, so that an issuer is checked the same way
// whoever declares it.
//
// A [Spec] is what an operator gives; [Spec.Validate] lists every problem
// at once and [Spec.Build] turns a valid Spec into the stored record with
// its defaults. A [Service] adds, updates, enables, disables and removes
// issuers in the store, checks that the clients an issuer names exist, and
// applies the configuration file's declarations ([Service.ApplyConfig]);
// issuers declared in the file are read-only elsewhere.
package issuers

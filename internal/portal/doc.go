// Package portal is the web portal served under /portal: operators and
// account holders sign in, register clients, see a secret once, issue
// initial access tokens, approve, rotate, disable and delete clients, edit
// what each may obtain, manage accounts and signing keys and read the audit
// log. Pages are server-rendered html/template with embedded assets and
// work without JavaScript.
//
// It also owns the operators' credentials: argon2id password hashes
// (PHC strings), the first administrator created on first start
// ([EnsureAdmin]) and the functions behind `sts operator`; and what keeps
// sign-in from being turned against the server or its users: a bound on
// concurrent password checks, a throttle per (user, source) with a
// per-user ceiling, and the sign-in form's signed CSRF token.
package portal

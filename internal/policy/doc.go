// Package policy decides what a token request may obtain. It is pure: given
// the authenticated client, what is known of the subject (and actor), the
// request and the clock, it returns a decision or an OAuth error, with no
// I/O. Every grant of the token endpoint passes through [Decide], so no
// grant can forget a check.
//
// The rules (SPEC §2, "no privilege escalation"):
//   - scope: issued ⊆ subject's scope ∩ client's allowed scopes;
//   - audience/resource: only the client's allowed targets (invalid_target);
//   - lifetime: never beyond the subject token's expiry;
//   - impersonation (no act claim for another subject) only for clients
//     allowed to impersonate; may_act on the subject token is honoured;
//   - delegation: an actor token names the calling client itself, and its
//     own act chain is kept, nested;
//   - entitlement: a client exchanges and introspects only tokens issued or
//     addressed to it (its id or a resource it serves), unless an operator
//     grants it more.
package policy

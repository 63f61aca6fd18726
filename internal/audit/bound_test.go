package audit_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
)

func TestBoundID(t *testing.T) {
	valid := strings.Repeat("a", audit.MaxID)
	if got := audit.BoundID(valid); got != valid {
		t.Errorf("a %d-byte id was changed to %q", len(valid), got)
	}
	a, b := audit.BoundID(strings.Repeat("x", 65000)+"a"), audit.BoundID(strings.Repeat("x", 65000)+"b")
	if a == b {
		t.Errorf("two long ids with one prefix stored alike: %q", a)
	}
	for _, s := range []string{a, b} {
		if len(s) > audit.MaxID || !strings.HasPrefix(s, strings.Repeat("x", 64)+"…") {
			t.Errorf("bounded id %q (%d bytes): want 64 bytes of prefix, …, a hash", s, len(s))
		}
	}
	if audit.BoundID(strings.Repeat("x", 300)) != audit.BoundID(strings.Repeat("x", 300)) {
		t.Error("BoundID is not deterministic")
	}
	// Multi-byte characters are never split.
	if s := audit.BoundID(strings.Repeat("é", 200)); !utf8.ValidString(s) {
		t.Errorf("bounded id %q is not UTF-8", s)
	}
}

func TestBound(t *testing.T) {
	long := strings.Repeat("ü", 40000)
	r := store.AuditRecord{
		Action: long, Decision: long, ClientID: long, AccountID: long, Subject: long, Actor: long,
		JTI: long, Error: long, Detail: long, RequestID: long, Remote: long,
	}
	for range 100 {
		r.Audience = append(r.Audience, long)
	}
	b := audit.Bound(r)
	for name, tc := range map[string]struct {
		v   string
		max int
	}{
		"action": {b.Action, audit.MaxCode}, "decision": {b.Decision, audit.MaxCode}, "error": {b.Error, audit.MaxCode},
		"client": {b.ClientID, audit.MaxID}, "account": {b.AccountID, audit.MaxID}, "jti": {b.JTI, audit.MaxID},
		"subject": {b.Subject, audit.MaxName}, "actor": {b.Actor, audit.MaxName}, "detail": {b.Detail, audit.MaxDetail},
		"request id": {b.RequestID, audit.MaxRequestID}, "remote": {b.Remote, audit.MaxRemote},
	} {
		if len(tc.v) > tc.max || len(tc.v) == 0 || !utf8.ValidString(tc.v) {
			t.Errorf("%s: %d bytes (cap %d), valid UTF-8 %v", name, len(tc.v), tc.max, utf8.ValidString(tc.v))
		}
	}
	if len(b.Audience) != audit.MaxAudiences || b.Audience[audit.MaxAudiences-1] != "… 85 more" {
		t.Errorf("audience: %d entries, last %q", len(b.Audience), b.Audience[len(b.Audience)-1])
	}
	for _, a := range b.Audience {
		if len(a) > audit.MaxName {
			t.Errorf("audience entry of %d bytes", len(a))
		}
	}
	if b.Count != 1 {
		t.Errorf("count %d, want 1", b.Count)
	}
	// A record within the caps is unchanged.
	small := store.AuditRecord{Action: "token.exchange", ClientID: "c", Audience: []string{"a", "b"}, Count: 3}
	if got := audit.Bound(small); got.Action != small.Action || got.ClientID != "c" || len(got.Audience) != 2 || got.Count != 3 {
		t.Errorf("Bound changed a small record: %+v", got)
	}
}

// TestBoundText: bytes that are not UTF-8, and NUL, are escaped (so that
// PostgreSQL's text columns take them); valid text is not changed, and the
// cap applies to the escaped form.
func TestBoundText(t *testing.T) {
	r := audit.Bound(store.AuditRecord{ClientID: "a\xffb\x00", Subject: "héllo ✓", Audience: []string{"ok", "\xc3"},
		Detail: strings.Repeat("\xff", 1000)})
	if r.ClientID != `a\xffb\x00` || r.Subject != "héllo ✓" || r.Audience[0] != "ok" || r.Audience[1] != `\xc3` {
		t.Errorf("client %q subject %q audience %q", r.ClientID, r.Subject, r.Audience)
	}
	if len(r.Detail) > audit.MaxDetail || !strings.HasPrefix(r.Detail, `\xff\xff`) || !utf8.ValidString(r.Detail) {
		t.Errorf("detail %q (%d bytes)", r.Detail, len(r.Detail))
	}
}

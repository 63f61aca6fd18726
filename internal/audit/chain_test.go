package audit_test

import (
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
)

func goldenRecord() store.AuditRecord {
	return store.AuditRecord{
		ID: 99, Time: time.Date(2026, 12, 3, 22, 0, 0, 123456789, time.UTC), Action: "token.exchange",
		Decision: store.DecisionRefused, ClientID: "c1", AccountID: "acct-1", Subject: "alice", Actor: "svc",
		Audience: []string{"https://a.example", "urn:b"}, JTI: "j1", Error: "invalid_target", Detail: "no",
		RequestID: "r1", Remote: "192.0.2.1:4711", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Count: 3,
		Chain: "host-1", Seq: 7,
	}
}

// The encoding of version 1 never changes: every stored hash depends on
// it. A change of encoding is a new ChainVersion, not an edit.
func TestChainHashGolden(t *testing.T) {
	r := goldenRecord()
	const prev = "0aadbb15c85587809cd444728e2f0b3446763e3723aca90f4fd89ba755e30b27"
	if got, want := audit.ChainHash(prev, &r), golden; got != want {
		t.Errorf("ChainHash = %s, want %s", got, want)
	}
	// What is not hashed: the id, and the time below the microsecond.
	r.ID = 1
	r.Time = r.Time.Add(200 * time.Nanosecond) // still …456 µs
	if audit.ChainHash(prev, &r) != golden {
		t.Error("the hash depends on the id or on the nanoseconds")
	}
}

// golden was computed from the encoding as docs/operations.md describes
// it, by a separate implementation (20 lines of Python), not by ChainHash.
const golden = "7f37bab276d606cd1b4b8ed89f83c4a9db67ebc2d49b6796a81071035abdfad1"

// Every hashed field changes the hash, and moving bytes between
// neighbouring fields does too (the fields are length-prefixed).
func TestChainHashFields(t *testing.T) {
	base := goldenRecord()
	h := audit.ChainHash("p", &base)
	for name, edit := range map[string]func(r *store.AuditRecord){
		"time":      func(r *store.AuditRecord) { r.Time = r.Time.Add(time.Microsecond) },
		"action":    func(r *store.AuditRecord) { r.Action += "x" },
		"decision":  func(r *store.AuditRecord) { r.Decision = store.DecisionGranted },
		"client":    func(r *store.AuditRecord) { r.ClientID += "x" },
		"account":   func(r *store.AuditRecord) { r.AccountID += "x" },
		"subject":   func(r *store.AuditRecord) { r.Subject += "x" },
		"actor":     func(r *store.AuditRecord) { r.Actor += "x" },
		"audience":  func(r *store.AuditRecord) { r.Audience = []string{"https://a.example"} },
		"audience2": func(r *store.AuditRecord) { r.Audience = []string{"https://a.example", "urn:", "b"} },
		"jti":       func(r *store.AuditRecord) { r.JTI += "x" },
		"error":     func(r *store.AuditRecord) { r.Error += "x" },
		"detail":    func(r *store.AuditRecord) { r.Detail += "x" },
		"request":   func(r *store.AuditRecord) { r.RequestID += "x" },
		"remote":    func(r *store.AuditRecord) { r.Remote += "x" },
		"trace":     func(r *store.AuditRecord) { r.TraceID = "" },
		"count":     func(r *store.AuditRecord) { r.Count++ },
		"chain":     func(r *store.AuditRecord) { r.Chain += "x" },
		"seq":       func(r *store.AuditRecord) { r.Seq++ },
		"shift":     func(r *store.AuditRecord) { r.Subject, r.Actor = "alices", "vc" },
	} {
		r := base
		edit(&r)
		if audit.ChainHash("p", &r) == h {
			t.Errorf("editing the %s leaves the hash alike", name)
		}
	}
	if audit.ChainHash("q", &base) == h {
		t.Error("the previous hash is not hashed")
	}
}

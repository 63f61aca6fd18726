package main

import (
	"github.com/keybridge/sts/internal/store"
	"slices"
	"strings"
	"testing"
)

func TestKeyListAndRotate(t *testing.T) {
	c := newCLI(t, testKEK)

	var keys []keyView
	c.okJSON(&keys, "key", "list", "-o", "json")
	if len(keys) != 0 {
		t.Fatalf("fresh data dir: key list = %+v, want none (listing must not create keys)", keys)
	}
	if out := c.ok("key", "list"); !strings.Contains(out, "No signing keys") {
		t.Errorf("key list with no keys: %q", out)
	}

	// The first rotate creates the current and next keys.
	var first rotateView
	c.okJSON(&first, "key", "rotate", "-o", "json", "--key-algorithm", "EdDSA")
	if first.Current == "" || first.Next == "" || first.Retired != "" {
		t.Fatalf("first rotate = %+v", first)
	}
	c.okJSON(&keys, "key", "list", "-o", "json")
	if got := states(keys); got != "current:"+first.Current+" next:"+first.Next {
		t.Fatalf("after first rotate: %s", got)
	}
	for _, k := range keys {
		if k.Algorithm != "EdDSA" || k.CreatedAt == "" {
			t.Errorf("key %+v: want EdDSA with created_at", k)
		}
	}

	// A rotation promotes next, retires current, adds a new next.
	out := c.ok("key", "rotate")
	current := strings.TrimSpace(field(t, out, "current:"))
	next := strings.TrimSpace(field(t, out, "next:"))
	if current != first.Next || next == first.Next || next == first.Current {
		t.Fatalf("rotate: current %s next %s, before %+v", current, next, first)
	}
	if !strings.Contains(out, first.Current+" is retired") {
		t.Errorf("rotate does not name the retired key:\n%s", out)
	}
	// Audited as the portal audits a rotation (the creation of the first
	// keys is not a rotation).
	recs, err := c.env().Store.ListAudit(t.Context(), store.AuditFilter{Action: "key.rotate"})
	if err != nil || len(recs) != 1 || !strings.Contains(recs[0].Detail, "retired "+first.Current) {
		t.Errorf("key.rotate audit: %+v, %v", recs, err)
	}
	c.okJSON(&keys, "key", "list", "-o", "json")
	if got, want := states(keys), "current:"+current+" next:"+next+" retired:"+first.Current; got != want {
		t.Fatalf("after rotate: %s, want %s", got, want)
	}
	for _, k := range keys {
		if k.State == "retired" && (k.RetiredAt == "" || k.ExpiresAt == "" || k.ActivatedAt == "") {
			t.Errorf("retired key %+v lacks its dates", k)
		}
	}
	text := c.ok("key", "list")
	for _, s := range []string{"KID", first.Current, "retired", current, "current", next} {
		if !strings.Contains(text, s) {
			t.Errorf("key list does not show %q:\n%s", s, text)
		}
	}

	c.fail("key-algorithm", "key", "rotate", "--key-algorithm", "HS256")
}

// rotateView is the JSON output of `key rotate`.
type rotateView struct {
	Current, Next, Retired string
}

func states(keys []keyView) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, k.State+":"+k.KID)
	}
	slices.Sort(parts) // current, next, retired
	return strings.Join(parts, " ")
}

func TestMigrate(t *testing.T) {
	c := newCLI(t, testKEK)
	if out := c.ok("migrate"); !strings.Contains(out, "up to date") || !strings.Contains(out, c.dir) {
		t.Errorf("migrate: %q", out)
	}
	// Twice is fine: nothing left to apply.
	c.ok("migrate")
}

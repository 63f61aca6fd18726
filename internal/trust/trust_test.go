package trust

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// counting counts ListIssuers calls of a real SQLite store.
type counting struct {
	store.Issuers
	lists atomic.Int64
}

func (c *counting) ListIssuers(ctx context.Context) ([]*store.TrustedIssuer, error) {
	c.lists.Add(1)
	return c.Issuers.ListIssuers(ctx)
}

func open(t *testing.T) (*sqlite.Store, *counting) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, &counting{Issuers: st}
}

func issuer(name string, p store.Policy) *store.TrustedIssuer {
	now := time.Now()
	return &store.TrustedIssuer{Name: name, Issuer: "https://" + name + ".example", Enabled: true, Source: store.IssuerSourceStore,
		Clients: []string{"*"}, Audiences: []string{"sts"}, SubjectPrefix: name + ":", Policy: p, CreatedAt: now, UpdatedAt: now}
}

func TestLoadCompilesAndFlagsBadRules(t *testing.T) {
	ctx := context.Background()
	st, cs := open(t)
	if err := st.CreateIssuer(ctx, issuer("good", store.Policy{Condition: `subject.sub != ""`})); err != nil {
		t.Fatal(err)
	}
	// A rule that does not compile (written by hand, bypassing the
	// issuers service): the issuer is kept, with the reason.
	if err := st.CreateIssuer(ctx, issuer("bad", store.Policy{Condition: `subjct.sub`})); err != nil {
		t.Fatal(err)
	}
	var dropped []string
	r := New(cs, nil, func(iss string) { dropped = append(dropped, iss) })
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	good, bad := r.Lookup("https://good.example"), r.Get("bad")
	if good == nil || good.Err != nil || good.Program == nil {
		t.Fatalf("good: %+v", good)
	}
	if bad == nil || bad.Err == nil || !strings.Contains(bad.Err.Error(), `issuer "bad"`) {
		t.Fatalf("bad: %+v", bad)
	}
	// Unchanged issuers keep their compiled program; a changed one is
	// compiled again and its cached keys dropped.
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Get("good") != good || len(dropped) != 0 {
		t.Fatalf("an unchanged issuer was recompiled (dropped %v)", dropped)
	}
	if _, err := st.UpdateIssuer(ctx, "good", func(ti *store.TrustedIssuer) error { ti.Enabled = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Get("good") == good || r.Get("good").Enabled || len(dropped) != 1 || dropped[0] != "https://good.example" {
		t.Fatalf("a change was not applied: %+v, dropped %v", r.Get("good"), dropped)
	}
	if err := st.DeleteIssuer(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Get("bad") != nil || r.Len() != 1 {
		t.Fatal("a removed issuer is still trusted")
	}
}

func TestLookupFreshIsRateLimited(t *testing.T) {
	ctx := context.Background()
	st, cs := open(t)
	r := New(cs, nil, nil)
	now := time.Now()
	r.now = func() time.Time { return now }
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	base := cs.lists.Load()
	// A flood of unknown issuers reloads once per interval.
	for i := 0; i < 100; i++ {
		if r.LookupFresh(ctx, "https://nobody.example") != nil {
			t.Fatal("an unknown issuer was found")
		}
	}
	if n := cs.lists.Load() - base; n != 1 {
		t.Fatalf("%d reloads for 100 unknown issuers", n)
	}
	// An issuer the CLI just added is found at once after the interval.
	if err := st.CreateIssuer(ctx, issuer("new", store.Policy{})); err != nil {
		t.Fatal(err)
	}
	now = now.Add(MissReloadInterval)
	if r.LookupFresh(ctx, "https://new.example") == nil {
		t.Fatal("a new issuer was not found")
	}
}

func TestClientProgramCompiledOncePerPolicy(t *testing.T) {
	r := New(&counting{}, nil, nil)
	c := &store.Client{ID: "c-1", Policy: store.Policy{Condition: `client.id == "c-1"`}}
	p1, err := r.ClientProgram(c)
	if err != nil || p1 == nil {
		t.Fatal(p1, err)
	}
	if p2, _ := r.ClientProgram(c); p2 != p1 {
		t.Fatal("the same policy was compiled again")
	}
	c.Policy.Condition = `client.id == "c-2"`
	if p3, _ := r.ClientProgram(c); p3 == p1 {
		t.Fatal("a changed policy kept the old program")
	}
	c.Policy.Condition = `client.idd +`
	if _, err := r.ClientProgram(c); err == nil || !strings.Contains(err.Error(), `client "c-1"`) {
		t.Fatalf("bad policy: %v", err)
	}
	if p, err := r.ClientProgram(&store.Client{ID: "c-3"}); p != nil || err != nil {
		t.Fatal("a client without rules has a program")
	}
}

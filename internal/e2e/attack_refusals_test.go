package e2e_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// TestAttackRefusalFloodsCoalesced (review of issue 8): the refusal paths
// outside the token endpoint that an unauthenticated caller can repeat —
// portal sign-ins with malformed names, RFC 7592 requests for client ids
// the caller makes up — are audited through the coalescing writer, so a
// flood becomes a few records whose counts add up to every refusal, not a
// record per request.
func TestAttackRefusalFloodsCoalesced(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	const each, workers = 600, 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range workers {
		// A visitor each: one keeps its form's CSRF token.
		v := newPortalVisitor(n, "127.0.0.1")
		if err := v.form(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := w; i < each; i += workers {
				if a, err := v.post("no such user!", "x"); err != nil || a.status != http.StatusUnauthorized {
					errs <- fmt.Errorf("answer %d, %v", a.status, err)
					return
				}
				var b [13]byte
				rand.Read(b[:])
				req, _ := http.NewRequest(http.MethodGet, n.URL+"/register/"+hex.EncodeToString(b[:]), nil)
				req.Header.Set("Authorization", "Bearer junk")
				if r := n.send(t.Context(), req); r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
					t.Errorf("GET /register/<made up>: %s", r)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("sign-in: %v", err)
	}
	// A graceful stop writes the counts still in memory.
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop")
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(c.data, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, action := range []string{"portal.signin", "client.read"} {
		recs, err := st.ListAudit(t.Context(), store.AuditFilter{Action: action, Limit: 10 * each})
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, r := range recs {
			total += max(r.Count, 1)
		}
		t.Logf("%s: %d refusals in %d records", action, total, len(recs))
		if total != each {
			t.Errorf("%s: the records count %d refusals, want %d", action, total, each)
		}
		if len(recs) > 20 {
			t.Errorf("%s: %d records for %d identical refusals from one address", action, len(recs), each)
		}
	}
}

package e2e_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
)

// TestAttackDataFileModes (issue 8, finding 9): in a data directory that
// already exists with mode 0755, under the common umask 022, `sts serve`
// writes sts.db, its WAL and its SHM 0600 and warns that the directory is
// readable by others.
func TestAttackDataFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	c := newCluster(t, clusterOptions{SQLite: true})
	// Start afresh in a directory an operator made with mkdir.
	for _, f := range []string{"sts.db", "sts.db-wal", "sts.db-shm"} {
		os.Remove(filepath.Join(c.data, f))
	}
	if err := os.Chmod(c.data, 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := c.start("a")
	c.Nodes = append(c.Nodes, n)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.CreateClient("--name", "modes")
	if r := n.ClientCredentials(t.Context(), cl); r.Status != http.StatusOK {
		t.Fatalf("client_credentials: %s", r)
	}
	for _, f := range []string{"sts.db", "sts.db-wal", "sts.db-shm"} {
		fi, err := os.Stat(filepath.Join(c.data, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %#o, want 0600", f, m)
		}
	}
	if log := n.Log(); !strings.Contains(log, "data directory is readable by other users") {
		t.Errorf("no warning about the 0755 data directory in the log:\n%s", log)
	}
}

// TestAttackForwardedFor (issue 8, finding 8): X-Forwarded-For is believed
// only from --trusted-proxies. From a trusted hop, the audit records the
// client's address (the nearest hop the proxy saw, not the first entry,
// which any caller can write), as every address-keyed limit does; a
// Forwarded header the caller adds is ignored; from an untrusted peer the
// header changes nothing.
func TestAttackForwardedFor(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		var args []string
		if trusted {
			args = []string{"--trusted-proxies", "127.0.0.1/32"}
		}
		c := newCluster(t, clusterOptions{SQLite: true, Args: args}, "a")
		n := c.Nodes[0]
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL+server.TokenPath,
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
		// A caller's own Forwarded header, which a balancer appending to
		// X-Forwarded-For passes through: never believed (review of
		// issue 8: it let any caller choose its address).
		req.Header.Set("Forwarded", "for=198.51.100.77")
		if r := n.send(t.Context(), req); r.Status != http.StatusUnauthorized {
			t.Fatalf("unknown client: %s", r)
		}
		recs, err := c.auditStore(t).ListAudit(t.Context(), store.AuditFilter{Action: "token"})
		if err != nil || len(recs) == 0 {
			t.Fatalf("audit: %v, %v", recs, err)
		}
		got := recs[0].Remote
		want := "203.0.113.9:0" // the nearest untrusted hop, not the spoofable first entry
		if !trusted {
			want = "127.0.0.1:"
		}
		if !strings.HasPrefix(got, want) {
			t.Errorf("trusted proxies %v: audit remote %q, want %q…", trusted, got, want)
		}
	}
}

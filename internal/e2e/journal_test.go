package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"

	"github.com/keybridge/sts/internal/store/postgres"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// auditStore opens the SQLite cluster's database, closed when the test
// ends, once every record in the server's audit journal is applied to it:
// the journal's checkpoint in the database names the end of its newest
// segment. The server answers once a record is journaled and applies it
// within a fraction of a second.
func (c *cluster) auditStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(c.data, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := filepath.Join(c.data, "audit-journal")
	id, err := os.ReadFile(filepath.Join(dir, "id"))
	if os.IsNotExist(err) {
		return st // no journal: records are in the database when answered
	}
	if err != nil {
		t.Fatal(err)
	}
	name := "audit.journal." + strings.TrimSpace(string(id))
	deadline := time.Now().Add(15 * time.Second)
	for {
		end := journalEnd(t, dir)
		cp, err := st.GetSetting(context.Background(), name)
		if err == nil && (end == "" || cp.Value == end) {
			return st
		}
		if time.Now().After(deadline) {
			var got string
			if cp != nil {
				got = cp.Value
			}
			t.Fatalf("the audit journal was not applied: checkpoint %q (%v), journal end %q", got, err, end)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// journalEnd is "segment:size" of the newest journal segment, "" if none.
func journalEnd(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			segs = append(segs, e.Name())
		}
	}
	if len(segs) == 0 {
		return ""
	}
	slices.Sort(segs)
	last := segs[len(segs)-1]
	fi, err := os.Stat(filepath.Join(dir, last))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(last, ".log"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(n, 10) + ":" + strconv.FormatInt(fi.Size(), 10)
}

// TestJournalSIGKILLLosesNoAuditRecord: a SQLite server (audit journal on,
// its default) is killed with SIGKILL under a load of exchanges; after a
// restart, every exchange it acknowledged has exactly one audit record:
// the records still in the journal at the kill are applied at the start,
// none twice.
func TestJournalSIGKILLLosesNoAuditRecord(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Resource, "--scope", "api")
	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Resource, "--audience", backendAud, "--scope", "api")
	subject := accessToken(t, n.ClientCredentials(ctx, frontend))

	var (
		mu   sync.Mutex
		jtis []string
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				r := n.Exchange(ctx, rs08, subject, backendAud)
				if r.Err != nil || r.Status != http.StatusOK {
					continue // refused or cut by the kill: not acknowledged
				}
				var tr oauth.TokenResponse
				if err := json.Unmarshal(r.Body, &tr); err != nil {
					continue
				}
				_, claims, err := jwtParts(tr.AccessToken)
				if err != nil {
					t.Errorf("issued %q: %v", tr.AccessToken, err)
					continue
				}
				jti, _ := claims["jti"].(string)
				mu.Lock()
				jtis = append(jtis, jti)
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	n.Kill()
	stop.Store(true)
	wg.Wait()
	if len(jtis) == 0 {
		t.Fatal("nothing was acknowledged before the kill: the test proves nothing")
	}
	// What the kill left: records journaled but not yet in the database.
	st, err := sqlite.Open(ctx, filepath.Join(c.data, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	inDB := grantedJTIs(t, st)
	st.Close()
	t.Logf("%d exchanges acknowledged; %d audited in the database at the kill", len(jtis), len(inDB))

	if _, err := c.start("a2"); err != nil {
		t.Fatal(err)
	}
	got := grantedJTIs(t, c.auditStore(t))
	missing, twice := 0, 0
	for _, j := range jtis {
		switch got[j] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing > 0 || twice > 0 {
		t.Errorf("of %d acknowledged exchanges, %d have no audit record and %d have several", len(jtis), missing, twice)
	}
	// The records replayed after the kill are chained with the others.
	if rep, err := audit.Verify(ctx, c.auditStore(t), audit.VerifyOptions{}); err != nil || !rep.OK() || rep.Records() < int64(len(jtis)) {
		t.Errorf("the audit trail after the kill and the replay does not verify: %v", auditProblems(rep, err))
	}
}

// verifyAudit fails the test unless the audit trail of the PostgreSQL
// database at databaseURL verifies (every hash chain, every record).
func verifyAudit(t *testing.T, databaseURL string) {
	t.Helper()
	st, err := postgres.Open(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := audit.Verify(context.Background(), st, audit.VerifyOptions{})
	if err != nil || !rep.OK() || rep.Records() == 0 {
		t.Errorf("the audit trail does not verify: %v", auditProblems(rep, err))
		return
	}
	t.Logf("audit trail verified: %d records in %d chains", rep.Records(), len(rep.Chains))
}

func auditProblems(rep *audit.Report, err error) any {
	if err != nil {
		return err
	}
	return fmt.Sprintf("%d records, problems %v", rep.Records(), rep.Problems())
}

// grantedJTIs counts the granted token.exchange audit records per jti.
func grantedJTIs(t *testing.T, st *sqlite.Store) map[string]int {
	t.Helper()
	rows, err := st.DB().QueryContext(t.Context(), `SELECT jti FROM audit WHERE action = 'token.exchange' AND decision = ?`, store.DecisionGranted)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var jti string
		if err := rows.Scan(&jti); err != nil {
			t.Fatal(err)
		}
		out[jti]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

package e2e_test

// Issue 8, finding 1: unauthenticated disk exhaustion through the audit
// table. Every refused request used to be committed with the caller's
// client_id verbatim (up to 64 KiB), with no retention: 2,000 requests
// with a 65 KB client_id and no valid credentials grew the data directory
// by 292 MB in 2.5 s and slowed legitimate clients.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
)

// dataSize is the size of the SQLite database with its WAL and shared
// memory files.
func dataSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, name := range []string{"sts.db", "sts.db-wal", "sts.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err == nil {
			n += fi.Size()
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return n
}

// 2,000 unauthenticated token requests, each with a distinct 65,000-byte
// client_id (client_secret_post, so that the whole request fits the 64 KiB
// body limit), grow the data directory by less than 20 MB, while a
// legitimate client's client_credentials requests keep succeeding during
// the flood, from the same address.
func TestAttackAuditDiskExhaustion(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	legit := c.CreateClient("--name", "legitimate")
	ctx := context.Background()
	if r := n.ClientCredentials(ctx, legit); r.Status != http.StatusOK {
		t.Fatalf("legitimate client before the flood: %v", r)
	}
	before := dataSize(t, c.data)

	const requests, workers, idSize = 2000, 16, 65000
	var (
		next     atomic.Int64
		refused  atomic.Int64
		statuses sync.Map // status → count, for the report
		wg       sync.WaitGroup
		flooding = make(chan struct{})
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			suffix := make([]byte, 8)
			for next.Add(1) <= requests {
				rand.Read(suffix)
				id := strings.Repeat("A", idSize-16) + hex.EncodeToString(suffix)
				body := url.Values{
					"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {id}, "client_secret": {"wrong"},
				}.Encode()
				req, _ := http.NewRequest(http.MethodPost, n.URL+server.TokenPath, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r := n.send(ctx, req)
				if r.Err != nil {
					t.Errorf("flood request: %v", r.Err)
					return
				}
				v, _ := statuses.LoadOrStore(r.Status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if r.Status == http.StatusUnauthorized || r.Status == http.StatusTooManyRequests {
					refused.Add(1)
				}
			}
		})
	}
	// The legitimate client, all through the flood.
	var legitOK, legitFailed atomic.Int64
	var legitErr atomic.Value
	var latencies []time.Duration // read after done
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-flooding:
				return
			default:
			}
			t0 := time.Now()
			r := n.ClientCredentials(ctx, legit)
			latencies = append(latencies, time.Since(t0))
			if r.Err == nil && r.Status == http.StatusOK {
				legitOK.Add(1)
			} else {
				legitFailed.Add(1)
				legitErr.Store(r.String())
			}
		}
	}()
	wg.Wait()
	elapsed := time.Since(start)
	close(flooding)
	<-done

	after := dataSize(t, c.data)
	growth := after - before
	var report []string
	statuses.Range(func(k, v any) bool {
		report = append(report, http.StatusText(k.(int))+"="+strconv.FormatInt(v.(*atomic.Int64).Load(), 10))
		return true
	})
	slices.Sort(latencies)
	var p95 time.Duration
	if len(latencies) > 0 {
		p95 = latencies[len(latencies)*95/100]
	}
	t.Logf("flood of %d requests with %d-byte client ids in %v: data directory %d → %d bytes (growth %.2f MB); answers %s; legitimate client: %d succeeded, %d failed during the flood, p95 %v",
		requests, idSize, elapsed.Round(time.Millisecond), before, after, float64(growth)/1e6, strings.Join(report, " "),
		legitOK.Load(), legitFailed.Load(), p95.Round(100*time.Microsecond))
	if refused.Load() != requests {
		t.Errorf("%d of %d flood requests refused with 401 or 429", refused.Load(), requests)
	}
	if growth >= 20e6 {
		t.Errorf("the data directory grew by %.1f MB under the flood, want < 20 MB", float64(growth)/1e6)
	}
	if legitFailed.Load() > 0 || legitOK.Load() == 0 {
		t.Errorf("legitimate client during the flood: %d succeeded, %d failed (last: %v)", legitOK.Load(), legitFailed.Load(), legitErr.Load())
	}
	if r := n.ClientCredentials(ctx, legit); r.Status != http.StatusOK {
		t.Errorf("legitimate client after the flood: %v", r)
	}
}

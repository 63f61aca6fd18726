package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
)

var adminLine = regexp.MustCompile(`admin: +http://(\S+)/metrics`)

// adminURL is the admin listener `sts serve` printed, or "".
func adminURL(n *node) string {
	if m := adminLine.FindStringSubmatch(n.Log()); m != nil {
		return "http://" + m[1]
	}
	return ""
}

// scrape reads the admin listener's /metrics.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// value sums the samples of a family whose labels include want: counter
// and gauge values, histogram sample counts.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

func get(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A real `sts serve --admin-addr`: after granted and refused requests,
// its /metrics holds every metric family of issue 15 with values that
// match what was done; /metrics and /debug/pprof/ are on the admin
// listener only. On both backends.
func TestMetricsAdminListener(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "postgres" {
				testDatabaseURL(t)
			}
			t.Parallel()
			c := newCluster(t, clusterOptions{SQLite: backend == "sqlite", Args: []string{"--admin-addr", "127.0.0.1:0"}}, "A")
			n := c.Nodes[0]
			admin := adminURL(n)
			if admin == "" {
				t.Fatalf("sts serve printed no admin listener:\n%s", n.Log())
			}
			if runtime.GOOS == "linux" {
				if ports := listeningPorts(t, n.cmd.Process.Pid); len(ports) != 2 {
					t.Errorf("listening on %v, want the public and the admin port", ports)
				}
			}
			checkMetrics(t, c, n, admin, backend)
		})
	}
}

func checkMetrics(t *testing.T, c *cluster, n *node, admin, backend string) {
	ctx := t.Context()
	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Aud, "--audience", backendAud, "--scope", "api")
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Aud, "--scope", "api")
	const (
		granted   = 5
		exchanges = 7
		refused   = 35 // wrong secrets from one address: 30 then throttled
		unknown   = 4  // grant types the server does not know
	)
	var subject string
	for range granted {
		subject = accessToken(t, n.ClientCredentials(ctx, frontend))
	}
	for range exchanges {
		accessToken(t, n.Exchange(ctx, rs08, subject, backendAud))
	}
	wrong := credentials{frontend.ID, "not-the-secret"}
	for range refused {
		if r := n.ClientCredentials(ctx, wrong); r.Status != http.StatusUnauthorized && r.Status != http.StatusTooManyRequests {
			t.Fatalf("wrong secret: %v", r)
		}
	}
	for i := range unknown {
		r := n.post(ctx, server.TokenPath, rs08, url.Values{"grant_type": {fmt.Sprintf("urn:example:%d", i)}})
		if r.errorCode() != string(oauth.ErrUnsupportedGrantType) {
			t.Fatalf("unknown grant type: %v", r)
		}
	}

	// Not on the public port.
	for _, p := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/heap"} {
		if code := get(t, n.URL+p); code != http.StatusNotFound {
			t.Errorf("public port %s: %d, want 404", p, code)
		}
	}
	// On the admin listener.
	if code := get(t, admin+"/debug/pprof/"); code != http.StatusOK {
		t.Errorf("admin /debug/pprof/: %d", code)
	}
	if code := get(t, admin+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("admin /debug/pprof/goroutine: %d", code)
	}

	// Audit records reach the writer before the answer; the queue is
	// empty once they are written. Scrape until it is (bounded).
	var mfs map[string]*dto.MetricFamily
	for deadline := time.Now().Add(5 * time.Second); ; {
		mfs = scrape(t, admin)
		if q, _ := value(mfs, "sts_audit_queue_depth"); q == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	exact := func(name string, want float64, labels ...string) {
		t.Helper()
		got, ok := value(mfs, name, labels...)
		if !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}
	atLeast := func(name string, min float64, labels ...string) float64 {
		t.Helper()
		got, ok := value(mfs, name, labels...)
		if !ok || got < min {
			t.Errorf("%s%v = %v (present %v), want at least %v", name, labels, got, ok, min)
		}
		return got
	}
	failures := 30.0 // the default --auth-failure-rate-per-address
	total := float64(granted + exchanges + refused + unknown)
	// Requests by endpoint, grant, outcome and OAuth error code.
	exact("sts_requests_total", granted, "endpoint", "token", "grant", "client_credentials", "outcome", "ok", "error", "none")
	exact("sts_requests_total", exchanges, "endpoint", "token", "grant", "token_exchange", "outcome", "ok")
	exact("sts_requests_total", failures, "endpoint", "token", "grant", "client_credentials", "outcome", "refused", "error", "invalid_client")
	exact("sts_requests_total", refused-failures, "endpoint", "token", "outcome", "refused", "error", "temporarily_unavailable")
	exact("sts_requests_total", unknown, "endpoint", "token", "grant", "other", "error", "unsupported_grant_type")
	exact("sts_requests_total", total, "endpoint", "token")
	exact("sts_rate_limited_total", refused-failures, "endpoint", "token")
	// Latency per endpoint and per pipeline step.
	exact("sts_request_duration_seconds", total, "endpoint", "token")
	exact("sts_token_step_duration_seconds", total, "step", "authenticate")
	exact("sts_token_step_duration_seconds", granted+exchanges+unknown, "step", "validate_subject")
	exact("sts_token_step_duration_seconds", granted+exchanges, "step", "policy")
	exact("sts_token_step_duration_seconds", granted+exchanges, "step", "sign")
	exact("sts_token_step_duration_seconds", total, "step", "audit")
	// The audit writer: queue drained, batches written (refusals of a
	// kind coalesce, so there are fewer records than requests).
	exact("sts_audit_queue_depth", 0)
	atLeast("sts_audit_batch_size", 1)
	if sum := mfs["sts_audit_batch_size"].GetMetric()[0].GetHistogram().GetSampleSum(); sum < granted+exchanges {
		t.Errorf("audit batches hold %v records, want at least the %d grants", sum, granted+exchanges)
	}
	// The signing key: young, rotation in about 30 days (the default).
	if age := atLeast("sts_signing_key_age_seconds", 0); age > 600 {
		t.Errorf("signing key age %v s for a key made at start", age)
	}
	if next := atLeast("sts_signing_key_next_rotation_seconds", 29*24*3600); next > 30*24*3600 {
		t.Errorf("next rotation in %v s, more than the 30-day period", next)
	}
	// Caches: every authenticated request read its client (once from the
	// store, then from memory); each exchange looked its subject up in
	// the revocations.
	hits := atLeast("sts_cache_requests_total", 1, "cache", "clients", "result", "hit")
	misses := atLeast("sts_cache_requests_total", 1, "cache", "clients", "result", "miss")
	if hits+misses < total {
		t.Errorf("client cache lookups %v+%v, fewer than the %v requests", hits, misses, total)
	}
	atLeast("sts_cache_requests_total", exchanges, "cache", "revocations", "result", "hit")
	for _, cache := range []string{"accounts", "issuer_jwks", "client_jwks"} {
		atLeast("sts_cache_requests_total", 0, "cache", cache, "result", "hit")
	}
	// The store: calls timed, pools reported.
	atLeast("sts_store_call_duration_seconds", 1)
	atLeast("sts_store_call_duration_seconds", 1, "op", "tx")
	atLeast("sts_store_pool_max_connections", 1, "backend", backend)
	atLeast("sts_store_pool_connections", 1, "backend", backend)
	atLeast("sts_store_pool_waits_total", 0, "backend", backend)
	// Go runtime and process.
	atLeast("go_goroutines", 5)
	atLeast("process_resident_memory_bytes", 1<<20)
	atLeast("go_memstats_heap_alloc_bytes", 1)
	// No caller's value in any label.
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.Contains(v, frontend.ID) || strings.Contains(v, rs08.ID) || strings.Contains(v, "urn:example") {
					t.Errorf("%s has the caller's value %q as a label", name, v)
				}
			}
		}
	}
}

// The admin listener is off unless --admin-addr is set: the server then
// listens on its public port only.
func TestMetricsAdminListenerOffByDefault(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts listening sockets through /proc")
	}
	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true}, "A")
	n := c.Nodes[0]
	if a := adminURL(n); a != "" {
		t.Fatalf("an admin listener without --admin-addr: %s", a)
	}
	ports := listeningPorts(t, n.cmd.Process.Pid)
	u, _ := url.Parse(n.URL)
	if len(ports) != 1 || strconv.Itoa(ports[0]) != u.Port() {
		t.Fatalf("listening on %v, want only the public port %s", ports, u.Port())
	}
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if code := get(t, n.URL+p); code != http.StatusNotFound {
			t.Errorf("public port %s: %d, want 404", p, code)
		}
	}
}

// listeningPorts are the TCP ports process pid listens on (Linux).
func listeningPorts(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" || !inodes[fs[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fs[1], ":")
			p, _ := strconv.ParseInt(hexPort, 16, 32)
			ports = append(ports, int(p))
		}
		f.Close()
	}
	return ports
}

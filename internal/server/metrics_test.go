package server_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
	dto "github.com/prometheus/client_model/go"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// seriesOf counts the series of each sts_ family of the server's registry
// and collects every label value.
func seriesOf(t *testing.T, s *ststest.STS) (series map[string]int, values map[string]bool) {
	t.Helper()
	mfs, err := s.Server.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, values = map[string]int{}, map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "sts_") {
			continue
		}
		series[mf.GetName()] = len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				values[l.GetValue()] = true
			}
		}
	}
	return series, values
}

// Attacker view: callers choose grant types, paths, client ids, tokens and
// error-provoking inputs, yet the series of the server's metrics stay a
// fixed, small set: no caller's value becomes a label.
func TestMetricsLabelCardinalityBounded(t *testing.T) {
	s := ststest.Start(t, ststest.Options{AuthFailuresPerAddress: 1000, AuthFailuresPerClient: 1000})
	c := s.CreateClient(nil)
	var sent []string
	post := func(path string, cl *ststest.Client, form url.Values) {
		r := s.PostForm(path, cl, form)
		if r.Status == http.StatusOK && path == server.TokenPath && form.Get("grant_type") != oauth.GrantTypeClientCredentials {
			t.Fatalf("%s %v granted: %s", path, form, r.Body)
		}
	}
	for range 300 {
		junk := "x" + randomHex(6)
		sent = append(sent, junk)
		// An unknown grant type, from a known and an unknown client.
		post(server.TokenPath, c, url.Values{"grant_type": {"urn:" + junk}})
		post(server.TokenPath, &ststest.Client{Client: c.Client, Secret: junk}, url.Values{"grant_type": {junk}})
		// A token that is nobody's, at each endpoint.
		post(server.IntrospectPath, c, url.Values{"token": {junk}})
		post(server.RevokePath, c, url.Values{"token": {junk}, "token_type_hint": {junk}})
		// Paths the server does not serve, under and beside its own.
		for _, p := range []string{"/" + junk, server.TokenPath + "/" + junk, "/portal/" + junk, "/register/" + junk, "/.well-known/" + junk} {
			req, _ := http.NewRequest(http.MethodGet, s.URL+p, nil)
			s.Do(req)
		}
	}
	// And what a real client does, so that granted series exist too.
	s.ClientCredentials(c, nil)

	series, values := seriesOf(t, s)
	for v := range values {
		for _, j := range sent {
			if strings.Contains(v, j) {
				t.Fatalf("a caller's value %q became the label value %q", j, v)
			}
		}
	}
	// The request counter: endpoints × grants × outcomes × codes actually
	// seen, a handful here; a flood of distinct inputs made none per input.
	if n := series["sts_requests_total"]; n == 0 || n > 16 {
		t.Fatalf("sts_requests_total has %d series after 2,700 requests of random input; want a handful", n)
	}
	total := 0
	for _, n := range series {
		total += n
	}
	// Every other family has a fixed set of series (per endpoint, step,
	// cache, pool, store operation): the whole registry is bounded.
	const bound = 200
	if total > bound {
		t.Fatalf("%d sts_ series (by family: %v); want at most %d", total, series, bound)
	}
	t.Logf("sts_ series after the flood: %d (sts_requests_total: %d)", total, series["sts_requests_total"])
}

// counterValue sums the counter's series whose labels include want.
func counterValue(mfs []*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// The request counter counts each answer once, by grant type (unknown
// ones as "other"), outcome and OAuth error code; the token latency window
// the dashboard reads sees them.
func TestMetricsRequestCounts(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	c := s.CreateClient(nil)
	for range 3 {
		s.ClientCredentials(c, nil)
	}
	for range 2 {
		if r := s.PostForm(server.TokenPath, c, url.Values{"grant_type": {"urn:nonsense"}}); r.Error() != string(oauth.ErrUnsupportedGrantType) {
			t.Fatalf("unknown grant: %d %s", r.Status, r.Body)
		}
	}
	if r := s.PostForm(server.TokenPath, &ststest.Client{Client: c.Client, Secret: "wrong"}, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.Status)
	}
	mfs, err := s.Server.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"endpoint": "token", "grant": "client_credentials", "outcome": "ok", "error": "none"}, 3},
		{map[string]string{"endpoint": "token", "grant": "other", "outcome": "refused", "error": "unsupported_grant_type"}, 2},
		{map[string]string{"endpoint": "token", "grant": "client_credentials", "outcome": "refused", "error": "invalid_client"}, 1},
		{map[string]string{"endpoint": "token"}, 6},
	} {
		if got := counterValue(mfs, "sts_requests_total", tc.labels); got != tc.want {
			t.Errorf("sts_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	p50, p99, n := s.Server.TokenLatency()
	if n != 6 || p50 <= 0 || p99 < p50 {
		t.Fatalf("TokenLatency() = %v, %v, %d; want 6 requests, 0 < p50 <= p99", p50, p99, n)
	}
}

// The portal's dashboard shows the token endpoint's latency that the
// server measured (Metrics.TokenLatency), and "not measured" before any
// token request.
func TestDashboardShowsMeasuredLatency(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	p := s.PortalSignIn("ops", s.CreateOperator("ops"))
	if r := p.Get("/portal/"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `id="latency-none"`) {
		t.Fatalf("dashboard before any token request: %d, latency card:\n%s", r.Status, latencyCard(r.Body))
	}
	c := s.CreateClient(nil)
	for range 4 {
		s.ClientCredentials(c, nil)
	}
	r := p.Get("/portal/")
	card := latencyCard(r.Body)
	if r.Status != http.StatusOK || !strings.Contains(card, `id="p50"`) || !strings.Contains(card, "Over the 4 requests") {
		t.Fatalf("dashboard after 4 token requests: %d, latency card:\n%s", r.Status, card)
	}
}

func latencyCard(body []byte) string {
	s := string(body)
	i := strings.Index(s, `id="latency"`)
	if i < 0 {
		return "(no latency card)"
	}
	s = s[i:]
	if j := strings.Index(s, "</section>"); j > 0 {
		s = s[:j]
	}
	return s
}

package e2e_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// alertRules is the shape of a Prometheus rule file.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	// metricName finds the server's metric names in an expression.
	metricName = regexp.MustCompile(`\b((?:sts|go|process)_[a-z0-9_]+)\b(\{[^}]*\})?`)
	// matcherLabel is the label of one matcher of a selector.
	matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// byLabels is the label list of an aggregation's by clause.
	byLabels = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	// templateLabel is a label an annotation shows.
	templateLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
)

// labelsOf are the label names of a family's series.
func labelsOf(mf *dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			out[l.GetName()] = true
		}
	}
	return out
}

// The example alert rules (deploy/prometheus/alerts.yml) parse, and every
// metric they name, with every label they select or group by, is exposed
// by a real `sts serve --admin-addr`.
func TestAlertRules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	if len(rules.Groups) == 0 {
		t.Fatal("alerts.yml: no group")
	}

	t.Parallel()
	c := newCluster(t, clusterOptions{SQLite: true, Args: []string{"--admin-addr", "127.0.0.1:0"}}, "A")
	n := c.Nodes[0]
	cl := c.CreateClient("--name", "alerts")
	accessToken(t, n.ClientCredentials(t.Context(), cl)) // so that the request counter has a series
	mfs := scrape(t, adminURL(n))

	// Labels Prometheus adds to every scraped series, and a histogram's
	// bucket label.
	targetLabels := map[string]bool{"instance": true, "job": true, "le": true}
	names := map[string]bool{}
	used := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: a rule needs alert and expr", where)
				continue
			}
			if names[r.Alert] {
				t.Errorf("%s: alert name used twice", where)
			}
			names[r.Alert] = true
			if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("%s: for %q is not a duration", where, r.For)
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("%s: severity %q is not critical, warning or info", where, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", where)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: unbalanced brackets in %q", where, r.Expr)
			}
			// Every metric the expression names is exposed, with the
			// labels its selector matches on.
			known := map[string]bool{}
			for k := range targetLabels {
				known[k] = true
			}
			for _, m := range metricName.FindAllStringSubmatch(r.Expr, -1) {
				name := m[1]
				mf, ok := mfs[name]
				if !ok {
					for _, suffix := range []string{"_bucket", "_count", "_sum"} {
						if base, cut := strings.CutSuffix(name, suffix); cut {
							if mf, ok = mfs[base]; ok && mf.GetType() != dto.MetricType_HISTOGRAM {
								ok = false
							}
							name = base
							break
						}
					}
				}
				if !ok {
					t.Errorf("%s: the server exposes no metric %s", where, m[1])
					continue
				}
				used[name] = true
				have := labelsOf(mf)
				for l := range have {
					known[l] = true
				}
				for _, l := range matcherLabel.FindAllStringSubmatch(m[2], -1) {
					if !have[l[1]] && !targetLabels[l[1]] {
						t.Errorf("%s: %s has no label %s", where, name, l[1])
					}
				}
			}
			for _, by := range byLabels.FindAllStringSubmatch(r.Expr, -1) {
				for _, l := range strings.Split(by[1], ",") {
					if l = strings.TrimSpace(l); l != "" && !known[l] {
						t.Errorf("%s: groups by %s, a label of none of its metrics", where, l)
					}
				}
			}
			for _, a := range r.Annotations {
				for _, l := range templateLabel.FindAllStringSubmatch(a, -1) {
					if !known[l[1]] {
						t.Errorf("%s: an annotation shows $labels.%s, a label of none of its metrics", where, l[1])
					}
				}
			}
		}
	}
	t.Logf("%d rules over %d of the server's metric families", len(names), len(used))
	// The rules cover the families an operator must watch.
	for _, must := range []string{"sts_requests_total", "sts_request_duration_seconds", "sts_token_step_duration_seconds",
		"sts_audit_queue_depth", "sts_signing_key_next_rotation_seconds", "sts_rate_limited_total",
		"sts_store_pool_connections", "sts_store_call_duration_seconds", "sts_cache_requests_total"} {
		if !used[must] {
			t.Errorf("no rule watches %s", must)
		}
	}
}

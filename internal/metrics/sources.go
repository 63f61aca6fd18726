package metrics

import (
	"time"

	"github.com/keybridge/sts/internal/store/sqlstore"
	"github.com/prometheus/client_golang/prometheus"
)

// Sources are the parts of a server read at each scrape (nothing on the
// request path): any nil field is left out.
type Sources struct {
	// AuditQueue is the number of audit records waiting for the writer.
	AuditQueue func() int
	// SigningKey reports when the current signing key became current and
	// the rotation period (zero: no scheduled rotation).
	SigningKey func() (activated time.Time, period time.Duration, ok bool)
	// Caches report their lookups served from memory (hits) and read
	// through (misses), since start.
	Caches []Cache
	// Backend names the store ("sqlite", "postgres"); Pools reports its
	// connection pools.
	Backend string
	Pools   func() []sqlstore.PoolStats
	Now     func() time.Time
}

// Cache is one cache of sts_cache_requests_total.
type Cache struct {
	Name  string
	Stats func() (hits, misses uint64)
}

// Watch registers the metrics read from s at scrape time.
func (m *Metrics) Watch(s Sources) {
	if m == nil {
		return
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.AuditQueue != nil {
		m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: "audit", Name: "queue_depth",
			Help: "Audit records queued for the writer, not yet written.",
		}, func() float64 { return float64(s.AuditQueue()) }))
	}
	m.Registry.MustRegister(&sourceCollector{s: s})
}

var (
	descKeyAge = prometheus.NewDesc(Namespace+"_signing_key_age_seconds",
		"Seconds since the current signing key became current.", nil, nil)
	descKeyNext = prometheus.NewDesc(Namespace+"_signing_key_next_rotation_seconds",
		"Seconds until the current signing key is due for scheduled rotation (negative: overdue); absent without scheduled rotation.", nil, nil)
	descCache = prometheus.NewDesc(Namespace+"_cache_requests_total",
		"Cache lookups, by cache (clients, accounts, revocations, issuer_jwks, client_jwks) and result (hit: served from memory; miss: read through or fetched).",
		[]string{"cache", "result"}, nil)
	descPoolConns = prometheus.NewDesc(Namespace+"_store_pool_connections",
		"Connections of a store pool, by state (in_use, idle).", []string{"backend", "pool", "state"}, nil)
	descPoolMax = prometheus.NewDesc(Namespace+"_store_pool_max_connections",
		"The most connections a store pool opens.", []string{"backend", "pool"}, nil)
	descPoolWaits = prometheus.NewDesc(Namespace+"_store_pool_waits_total",
		"Times a caller waited for a connection of a store pool.", []string{"backend", "pool"}, nil)
	descPoolWait = prometheus.NewDesc(Namespace+"_store_pool_wait_seconds_total",
		"Time callers spent waiting for a connection of a store pool.", []string{"backend", "pool"}, nil)
)

type sourceCollector struct{ s Sources }

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descKeyAge
	ch <- descKeyNext
	ch <- descCache
	ch <- descPoolConns
	ch <- descPoolMax
	ch <- descPoolWaits
	ch <- descPoolWait
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.SigningKey != nil {
		if at, period, ok := s.SigningKey(); ok {
			age := s.Now().Sub(at)
			ch <- prometheus.MustNewConstMetric(descKeyAge, prometheus.GaugeValue, age.Seconds())
			if period > 0 {
				ch <- prometheus.MustNewConstMetric(descKeyNext, prometheus.GaugeValue, (period - age).Seconds())
			}
		}
	}
	for _, cc := range s.Caches {
		h, miss := cc.Stats()
		ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(h), cc.Name, "hit")
		ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(miss), cc.Name, "miss")
	}
	if s.Pools != nil {
		for _, p := range s.Pools() {
			ch <- prometheus.MustNewConstMetric(descPoolConns, prometheus.GaugeValue, float64(p.InUse), s.Backend, p.Pool, "in_use")
			ch <- prometheus.MustNewConstMetric(descPoolConns, prometheus.GaugeValue, float64(p.Idle), s.Backend, p.Pool, "idle")
			ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(p.Max), s.Backend, p.Pool)
			ch <- prometheus.MustNewConstMetric(descPoolWaits, prometheus.CounterValue, float64(p.Waits), s.Backend, p.Pool)
			ch <- prometheus.MustNewConstMetric(descPoolWait, prometheus.CounterValue, p.WaitTime.Seconds(), s.Backend, p.Pool)
		}
	}
}

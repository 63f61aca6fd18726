package server

import (
	"strings"
	"time"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/metrics"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlstore"
)

// endpointOf is the metrics label of a request path: one of a fixed set,
// whatever the caller sends.
func endpointOf(path string) metrics.Endpoint {
	switch path {
	case TokenPath:
		return metrics.EndpointToken
	case IntrospectPath:
		return metrics.EndpointIntrospect
	case RevokePath:
		return metrics.EndpointRevoke
	case discovery.MetadataPath, discovery.OpenIDConfigPath:
		return metrics.EndpointDiscovery
	case discovery.JWKSPath:
		return metrics.EndpointJWKS
	case HealthPath, ReadyPath:
		return metrics.EndpointHealth
	case register.Path:
		return metrics.EndpointRegister
	case portal.Path:
		return metrics.EndpointPortal
	}
	switch {
	case strings.HasPrefix(path, register.Path+"/"):
		return metrics.EndpointRegister
	case strings.HasPrefix(path, portal.Path+"/"):
		return metrics.EndpointPortal
	}
	return metrics.EndpointOther
}

// observeStore has the database backend of st (not a wrapper of it) time
// its calls into m, and returns it for its pool statistics; nil when st is
// no such backend.
func observeStore(st store.Store, m *metrics.Metrics) poolBackend {
	if o, ok := st.(interface{ ObserveCalls(sqlstore.CallObserver) }); ok {
		o.ObserveCalls(m.StoreCall)
	}
	b, _ := st.(poolBackend)
	return b
}

// poolBackend is a database backend that reports its pools.
type poolBackend interface {
	Backend() string
	PoolStats() []sqlstore.PoolStats
}

// watch registers the metrics read at scrape time.
func (s *Server) watch(backend poolBackend, assertions *clientauth.Assertions) {
	cacheOf := func(name string) metrics.Cache {
		return metrics.Cache{Name: name, Stats: func() (uint64, uint64) { return s.cache.CacheStats(name) }}
	}
	src := metrics.Sources{
		AuditQueue: s.audit.QueueLen,
		SigningKey: s.opts.Keys.CurrentKey,
		Caches: []metrics.Cache{
			cacheOf("clients"), cacheOf("accounts"), cacheOf("revocations"),
			{Name: "issuer_jwks", Stats: s.Fetcher.KeyCacheStats},
			{Name: "client_jwks", Stats: assertions.KeyCacheStats},
		},
		Now: func() time.Time { return s.opts.Now() },
	}
	if backend != nil {
		src.Backend, src.Pools = backend.Backend(), backend.PoolStats
	}
	s.Metrics.Watch(src)
}

// TokenLatency is the token endpoint's p50 and p99 latency over the last
// few minutes and the number of requests they are of (for the portal's
// dashboard).
func (s *Server) TokenLatency() (p50, p99 time.Duration, n uint64) {
	return s.Metrics.TokenLatency()
}

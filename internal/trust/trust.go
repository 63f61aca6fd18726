// Package trust holds the live, compiled view of what the operator trusts
// and rules: the trusted issuers (store.TrustedIssuer) with their CEL
// programs, indexed by "iss", and the compiled CEL programs of clients.
// The token endpoint reads it on every exchange without touching the
// database; it is reloaded when the change feed announces an issuer
// change, and polled as a fallback (changes made by the CLI on SQLite, or
// while the feed was down).
package trust

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/celpolicy"
	"github.com/keybridge/sts/internal/store"
)

// Issuer is a trusted issuer with its compiled rules.
type Issuer struct {
	*store.TrustedIssuer
	// Program is the compiled Policy (nil when it has no rule).
	Program *celpolicy.Program
	// Err is why the issuer's rules do not compile (stored by an older
	// version, or edited in the database by hand); its tokens are then
	// refused, naming it.
	Err error
}

// MayPresent reports whether the client may present the issuer's tokens.
func (i *Issuer) MayPresent(clientID string) bool {
	return slices.Contains(i.Clients, "*") || slices.Contains(i.Clients, clientID)
}

// Registry is the live view. It is safe for concurrent use.
type Registry struct {
	store  store.Issuers
	log    *slog.Logger
	onDrop func(issuer string)

	mu     sync.RWMutex
	byIss  map[string]*Issuer
	byName map[string]*Issuer

	cmu     sync.Mutex
	clients map[string]clientProgram

	// missMu and lastMiss rate-limit the reloads caused by tokens of
	// issuers not (yet) known: see LookupFresh.
	missMu   sync.Mutex
	lastMiss time.Time
	now      func() time.Time
}

// MissReloadInterval is the least time between two reloads caused by a
// token naming an unknown issuer.
const MissReloadInterval = 250 * time.Millisecond

type clientProgram struct {
	policy store.Policy
	prog   *celpolicy.Program
	err    error
}

// maxClientPrograms bounds the compiled client programs held; past it the
// cache is emptied (compiling again is cheap next to an exchange).
const maxClientPrograms = 10000

// New returns a registry over s; call Load before use. onDrop, if not nil,
// is called with the issuer URL of each issuer changed or removed, so
// that caches of its keys can be dropped.
func New(s store.Issuers, log *slog.Logger, onDrop func(issuer string)) *Registry {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{store: s, log: log, onDrop: onDrop, byIss: map[string]*Issuer{}, byName: map[string]*Issuer{}, clients: map[string]clientProgram{}, now: time.Now}
}

// Load reads every issuer and compiles those that changed since the last
// load (any field differing). An issuer whose rules do not compile is kept with Err set (and
// logged), so that its tokens are refused with a reason rather than as
// unknown.
func (r *Registry) Load(ctx context.Context) error {
	list, err := r.store.ListIssuers(ctx)
	if err != nil {
		return err
	}
	r.mu.RLock()
	old := r.byName
	r.mu.RUnlock()
	byIss := make(map[string]*Issuer, len(list))
	byName := make(map[string]*Issuer, len(list))
	for _, ti := range list {
		is := old[ti.Name]
		if is == nil || !reflect.DeepEqual(is.TrustedIssuer, ti) {
			is = compile(ti)
			if is.Err != nil {
				r.log.Error("trusted issuer has invalid rules; its tokens are refused", "issuer", ti.Name, "err", is.Err)
			}
		}
		byIss[ti.Issuer] = is
		byName[ti.Name] = is
	}
	r.mu.Lock()
	r.byIss, r.byName = byIss, byName
	r.mu.Unlock()
	if r.onDrop != nil {
		for name, is := range old {
			if n := byName[name]; n != is {
				r.onDrop(is.Issuer)
			}
		}
	}
	return nil
}

func compile(ti *store.TrustedIssuer) *Issuer {
	prog, err := celpolicy.Compile(fmt.Sprintf("issuer %q", ti.Name), ti.Policy)
	return &Issuer{TrustedIssuer: ti, Program: prog, Err: err}
}

// Lookup returns the issuer whose "iss" is iss, or nil.
func (r *Registry) Lookup(iss string) *Issuer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byIss[iss]
}

// LookupFresh is Lookup, but when iss is unknown it reloads the registry
// first (at most once per MissReloadInterval, four times a second, whatever the callers send),
// so that an issuer just added by the CLI on the same SQLite database is
// trusted at once rather than at the next poll.
func (r *Registry) LookupFresh(ctx context.Context, iss string) *Issuer {
	if is := r.Lookup(iss); is != nil {
		return is
	}
	r.missMu.Lock()
	due := r.now().Sub(r.lastMiss) >= MissReloadInterval
	if due {
		r.lastMiss = r.now()
	}
	r.missMu.Unlock()
	if !due {
		return nil
	}
	if err := r.Load(ctx); err != nil {
		r.log.Warn("reload trusted issuers", "err", err)
		return nil
	}
	return r.Lookup(iss)
}

// Get returns the issuer named name, or nil.
func (r *Registry) Get(name string) *Issuer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[name]
}

// Introspectors returns the enabled issuers with an introspection endpoint
// whose tokens the client may present, by name: the candidates for an
// opaque token that is not this server's.
func (r *Registry) Introspectors(clientID string) []*Issuer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []*Issuer
	for _, name := range slices.Sorted(maps.Keys(r.byName)) {
		is := r.byName[name]
		if is.Enabled && is.Err == nil && is.IntrospectionEndpoint != "" && is.MayPresent(clientID) {
			out = append(out, is)
		}
	}
	return out
}

// Len is the number of trusted issuers.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byName)
}

// ClientProgram returns the compiled rules of c (nil when it has none). A
// client's rules are compiled once per version of its policy.
func (r *Registry) ClientProgram(c *store.Client) (*celpolicy.Program, error) {
	if c.Policy.IsZero() {
		return nil, nil
	}
	r.cmu.Lock()
	defer r.cmu.Unlock()
	if cp, ok := r.clients[c.ID]; ok && samePolicy(cp.policy, c.Policy) {
		return cp.prog, cp.err
	}
	prog, err := celpolicy.Compile(fmt.Sprintf("client %q", c.ID), c.Policy)
	if len(r.clients) >= maxClientPrograms {
		clear(r.clients)
	}
	r.clients[c.ID] = clientProgram{policy: clonePolicy(c.Policy), prog: prog, err: err}
	return prog, err
}

func samePolicy(a, b store.Policy) bool {
	return a.Condition == b.Condition && a.Scope == b.Scope && a.Subject == b.Subject && maps.Equal(a.Claims, b.Claims)
}

func clonePolicy(p store.Policy) store.Policy {
	p.Claims = maps.Clone(p.Claims)
	return p
}

// Run reloads the registry every interval until ctx ends, as a fallback
// to the change feed.
func (r *Registry) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.Load(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reload trusted issuers", "err", err)
		}
	}
}

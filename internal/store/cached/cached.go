// Package cached wraps a store.Store with the in-memory reads of the token
// endpoint's hot path, so that validating a self-issued JWT and
// authenticating a known client need no database query:
//
//   - clients (and, for the token endpoint, accounts) read within
//     ClientTTL are served from memory; changes made
//     through this wrapper take effect at once, changes made by another
//     process (the CLI, another instance) within ClientTTL;
//   - the set of revoked JWT identifiers and refresh families is held in
//     memory, loaded at start, updated at once by revocations through this
//     wrapper and, for those made elsewhere, at each Sync (the server calls
//     it every second, and on every revocation the change feed announces).
//
// Everything else passes through to the wrapped store.
package cached

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Options tune the caches; zero values take the defaults.
type Options struct {
	// ClientTTL bounds how stale a cached client may be (default 2 s).
	ClientTTL time.Duration
	// MaxClients bounds the client cache (default 100,000 entries).
	MaxClients int
	Now        func() time.Time
	Logger     *slog.Logger
}

// syncMargin is subtracted from the last sync time when polling, so that a
// revocation whose transaction committed a little after its timestamp (or
// written by a host whose clock lags) is still seen.
const syncMargin = 30 * time.Second

// ttlCache holds copies of values read within ttl, at most max of them.
// Values go in and come out through clone, so that no caller can change
// the cache.
type ttlCache[T any] struct {
	ttl   time.Duration
	max   int
	now   func() time.Time
	clone func(*T) *T

	mu sync.RWMutex
	m  map[string]ttlEntry[T]
}

type ttlEntry[T any] struct {
	v       T
	fetched time.Time
}

func newTTLCache[T any](o Options, clone func(*T) *T) *ttlCache[T] {
	return &ttlCache[T]{ttl: o.ClientTTL, max: o.MaxClients, now: o.Now, clone: clone, m: map[string]ttlEntry[T]{}}
}

// get serves a fresh cached copy or reads through with read. Errors
// (unknown ids included) are not cached, so probing with random ids cannot
// fill memory.
func (c *ttlCache[T]) get(id string, read func() (*T, error)) (*T, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if ok && now.Sub(e.fetched) < c.ttl {
		return c.clone(&e.v), nil
	}
	v, err := read()
	if err != nil {
		return nil, err
	}
	c.put(id, v, now)
	return v, nil
}

// put stores a copy of v as read at fetched, evicting an arbitrary entry
// when full.
func (c *ttlCache[T]) put(id string, v *T, fetched time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[id] = ttlEntry[T]{v: *c.clone(v), fetched: fetched}
}

func (c *ttlCache[T]) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// Store is the caching wrapper.
type Store struct {
	store.Store
	o Options

	clients  *ttlCache[store.Client]
	accounts *ttlCache[store.Account]

	rmu      sync.RWMutex
	revoked  map[revKey]int64 // jti or family key → expiry of the tokens, Unix µs
	lastSync time.Time
}

// revKey is the key of a revoked jti (or family key) in memory: the first
// 128 bits of its SHA-256. A million revocations then hold about 40 MB
// instead of 120 (a string header and its bytes, a time.Time), and the map
// holds no pointer for the garbage collector to scan at every cycle. Two
// identifiers sharing a key (2⁻⁶⁴ odds at a billion entries; jtis are this
// server's own random values) would only refuse a token, never accept one.
type revKey [16]byte

func keyOf(jti string) revKey {
	h := sha256.Sum256([]byte(jti))
	return revKey(h[:16])
}

// New wraps inner and loads the revocation set.
func New(ctx context.Context, inner store.Store, o Options) (*Store, error) {
	if o.ClientTTL == 0 {
		o.ClientTTL = 2 * time.Second
	}
	if o.MaxClients == 0 {
		o.MaxClients = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		Store:    inner,
		o:        o,
		clients:  newTTLCache(o, clone),
		accounts: newTTLCache(o, cloneAccount),
		revoked:  map[revKey]int64{},
	}
	return s, s.Sync(ctx)
}

// GetClient serves a fresh cached copy or reads through. Unknown ids are
// not cached, so probing with random ids cannot fill memory.
func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	return s.clients.get(id, func() (*store.Client, error) { return s.Store.GetClient(ctx, id) })
}

// clone copies a client deeply, so that no caller can change the cache.
func clone(c *store.Client) *store.Client {
	d := *c
	d.SecretHash = slices.Clone(c.SecretHash)
	d.PrevSecretHash = slices.Clone(c.PrevSecretHash)
	d.GrantTypes = slices.Clone(c.GrantTypes)
	d.Audiences = slices.Clone(c.Audiences)
	d.Scopes = slices.Clone(c.Scopes)
	d.RegistrationTokenHash = slices.Clone(c.RegistrationTokenHash)
	d.Metadata = slices.Clone(c.Metadata)
	d.Resources = slices.Clone(c.Resources)
	d.IATClaims = slices.Clone(c.IATClaims)
	return &d
}

func (s *Store) forget(id string) { s.clients.forget(id) }

// AccountReader reads accounts.
type AccountReader interface {
	GetAccount(ctx context.Context, id string) (*store.Account, error)
}

// HotAccounts is the cached view of accounts for the token endpoint, which
// checks the account of every client it authenticates; like clients, a
// cached account is at most ClientTTL old. Everything else (registration,
// the portal) reads accounts through the Store, fresh.
func (s *Store) HotAccounts() AccountReader { return hotAccounts{s} }

type hotAccounts struct{ s *Store }

func (h hotAccounts) GetAccount(ctx context.Context, id string) (*store.Account, error) {
	return h.s.cachedAccount(ctx, id)
}

func (s *Store) cachedAccount(ctx context.Context, id string) (*store.Account, error) {
	return s.accounts.get(id, func() (*store.Account, error) { return s.Store.GetAccount(ctx, id) })
}

func cloneAccount(a *store.Account) *store.Account {
	d := *a
	d.SharedSecret = slices.Clone(a.SharedSecret)
	d.Audiences = slices.Clone(a.Audiences)
	d.Scopes = slices.Clone(a.Scopes)
	return &d
}

func (s *Store) forgetAccount(id string) { s.accounts.forget(id) }

// CreateAccount writes through.
func (s *Store) CreateAccount(ctx context.Context, a *store.Account) error {
	defer s.forgetAccount(a.ID)
	return s.Store.CreateAccount(ctx, a)
}

// UpdateAccount writes through and drops the cached copy.
func (s *Store) UpdateAccount(ctx context.Context, id string, update func(*store.Account) error) (*store.Account, error) {
	defer s.forgetAccount(id)
	return s.Store.UpdateAccount(ctx, id, update)
}

// CreateClient writes through.
func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	defer s.forget(c.ID)
	return s.Store.CreateClient(ctx, c)
}

// UpdateClient writes through and drops the cached copy.
func (s *Store) UpdateClient(ctx context.Context, id string, update func(*store.Client) error) (*store.Client, error) {
	defer s.forget(id)
	return s.Store.UpdateClient(ctx, id, update)
}

// DeleteClient writes through and drops the cached copy.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	defer s.forget(id)
	return s.Store.DeleteClient(ctx, id)
}

// IsRevoked answers from memory.
func (s *Store) IsRevoked(_ context.Context, jti string) (bool, error) {
	k := keyOf(jti)
	s.rmu.RLock()
	_, ok := s.revoked[k]
	s.rmu.RUnlock()
	return ok, nil
}

// RevokeJTI writes through, then adds the entry: once it returns, this
// instance refuses the token.
func (s *Store) RevokeJTI(ctx context.Context, jti string, expiresAt, now time.Time) error {
	if err := s.Store.RevokeJTI(ctx, jti, expiresAt, now); err != nil {
		return err
	}
	s.rmu.Lock()
	s.add(keyOf(jti), expiresAt.UnixMicro())
	s.rmu.Unlock()
	return nil
}

// RevokeFamily writes through, then reads the family's revocation (whose
// expiry the store computed): once it returns, this instance refuses the
// family's JWTs.
func (s *Store) RevokeFamily(ctx context.Context, familyID string, now time.Time) error {
	if err := s.Store.RevokeFamily(ctx, familyID, now); err != nil {
		return err
	}
	return s.Sync(ctx)
}

// RotateRefreshToken writes through; a replay revoked the token's family,
// whose revocation is then read as RevokeFamily does.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash []byte, now time.Time, next *store.TokenRecord) error {
	err := s.Store.RotateRefreshToken(ctx, oldHash, now, next)
	if errors.Is(err, store.ErrTokenReplayed) {
		if serr := s.Sync(ctx); serr != nil {
			// The revocation is committed; the next Sync reads it.
			s.o.Logger.Warn("read the revocation of a replayed refresh family", "err", serr)
		}
	}
	return err
}

// DeleteExpiredRevocations deletes through and prunes the in-memory set
// alike.
func (s *Store) DeleteExpiredRevocations(ctx context.Context, now time.Time) (int, error) {
	n, err := s.Store.DeleteExpiredRevocations(ctx, now)
	if err != nil {
		return n, err
	}
	cut := now.UnixMicro()
	s.rmu.Lock()
	for k, exp := range s.revoked {
		if exp < cut {
			delete(s.revoked, k)
		}
	}
	s.rmu.Unlock()
	return n, nil
}

// Sync reads the revocations made since the last sync (all of them the
// first time). Entries leave the set through DeleteExpiredRevocations, whose
// caller knows the leeway past expiry during which a token is still
// accepted.
func (s *Store) Sync(ctx context.Context) error {
	now := s.o.Now()
	s.rmu.RLock()
	since := s.lastSync
	s.rmu.RUnlock()
	if !since.IsZero() {
		since = since.Add(-syncMargin)
	}
	// The entries are read in their compact form first, and only then
	// merged under the lock, so that readers are not held up by the
	// query; a store that can visit them (store.RevocationVisitor) does
	// without the list of store.Revocation, which at start, for a million
	// entries, would be three times the set itself.
	var got []revEntry
	add := func(r store.Revocation) error {
		got = append(got, revEntry{keyOf(r.JTI), r.ExpiresAt.UnixMicro()})
		return nil
	}
	if v, ok := s.Store.(store.RevocationVisitor); ok {
		if err := v.EachRevocation(ctx, since, now, add); err != nil {
			return err
		}
	} else {
		revs, err := s.Store.ListRevocations(ctx, since, now)
		if err != nil {
			return err
		}
		for _, r := range revs {
			add(r)
		}
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(s.revoked) == 0 && len(got) > 0 {
		// The first load: a map of the right size at once, not grown
		// step by step through a million inserts.
		s.revoked = make(map[revKey]int64, len(got))
	}
	for _, e := range got {
		s.add(e.k, e.exp)
	}
	s.lastSync = now
	return nil
}

// revEntry is a revocation read by Sync, before it joins the set.
type revEntry struct {
	k   revKey
	exp int64
}

// add records that the tokens of k are revoked until exp (Unix µs, the precision of the stores): a
// second revocation extends the entry to the later expiry, never shortens
// it. The caller holds rmu.
func (s *Store) add(k revKey, exp int64) {
	if old, ok := s.revoked[k]; !ok || exp > old {
		s.revoked[k] = exp
	}
}

// Apply acts on a change announced by another process (store.ChangeFeed):
// a changed client is dropped from the cache, a new revocation is read at
// once. Other kinds (keys, trusted issuers, device profiles: their users keep their own
// copies) are not cached here.
func (s *Store) Apply(ctx context.Context, ch store.Change) error {
	switch ch.Kind {
	case store.ChangeClient:
		s.forget(ch.Key)
	case store.ChangeAccount:
		s.forgetAccount(ch.Key)
	case store.ChangeRevocation:
		return s.Sync(ctx)
	}
	return nil
}

// errNoSeeder: the wrapped store does not implement the optional
// interface asked for.
var errNoSeeder = errors.New("cached: the wrapped store does not implement this optional interface")

// SeedClients implements [store.Seeder] by passing through to the wrapped
// store. Seeded clients are read on demand, like any other.
func (s *Store) SeedClients(ctx context.Context, n int, template *store.Client) error {
	sd, ok := s.Store.(store.Seeder)
	if !ok {
		return errNoSeeder
	}
	return sd.SeedClients(ctx, n, template)
}

// SeedRevocations implements [store.Seeder] by passing through to the
// wrapped store, then loads the new revocations into the in-memory set.
func (s *Store) SeedRevocations(ctx context.Context, n int, expiresAt, now time.Time) error {
	sd, ok := s.Store.(store.Seeder)
	if !ok {
		return errNoSeeder
	}
	if err := sd.SeedRevocations(ctx, n, expiresAt, now); err != nil {
		return err
	}
	return s.Sync(ctx)
}

// EachRevocation implements [store.RevocationVisitor] by passing through
// to the wrapped store.
func (s *Store) EachRevocation(ctx context.Context, since, now time.Time, each func(store.Revocation) error) error {
	v, ok := s.Store.(store.RevocationVisitor)
	if !ok {
		return errNoSeeder
	}
	return v.EachRevocation(ctx, since, now, each)
}

// AppendAuditCheckpoint implements [store.AuditCheckpointer] by passing
// through to the wrapped store.
func (s *Store) AppendAuditCheckpoint(ctx context.Context, recs []store.AuditRecord, cp *store.Setting) error {
	a, ok := s.Store.(store.AuditCheckpointer)
	if !ok {
		return errNoSeeder
	}
	return a.AppendAuditCheckpoint(ctx, recs, cp)
}

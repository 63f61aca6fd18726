package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/store"
)

// Supported signing algorithms.
const (
	ES256 = string(jose.ES256)
	EdDSA = string(jose.EdDSA)
	RS256 = string(jose.RS256)
)

// Algorithms is the allow-list of algorithms the server signs and verifies
// its own tokens with.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// Options configure a Manager.
type Options struct {
	Store  store.Keys
	Sealer *Sealer
	// Algorithm of newly generated keys; ES256 when empty.
	Algorithm string
	// RotationPeriod is how long a key signs before the scheduler rotates
	// it; zero disables scheduled rotation.
	RotationPeriod time.Duration
	// RetainRetired is how long a retired key stays published: at least
	// the longest lifetime of a token it signed, plus clock leeway.
	RetainRetired time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Key is a usable key of the snapshot.
type Key struct {
	ID        string
	Algorithm jose.SignatureAlgorithm
	State     store.KeyState
	// ActivatedAt is when the key became current (zero while next).
	ActivatedAt time.Time
	Public      jose.JSONWebKey
	private     crypto.Signer
}

// Snapshot is an immutable view of the keys at one moment.
type Snapshot struct {
	Current *Key
	byID    map[string]*Key
	// JWKS is the encoded public JWK set.
	JWKS []byte
	// signers by JWS "typ" header value, for the current key.
	signers sync.Map
}

// Lookup returns the published key with this kid.
func (s *Snapshot) Lookup(kid string) (*Key, bool) {
	k, ok := s.byID[kid]
	return k, ok
}

// Keys returns all published keys.
func (s *Snapshot) Keys() []*Key {
	out := make([]*Key, 0, len(s.byID))
	for _, k := range s.byID {
		out = append(out, k)
	}
	return out
}

// Signer returns a JOSE signer of the current key that writes the given
// "typ" header; signers are built once per snapshot and type.
func (s *Snapshot) Signer(typ string) (jose.Signer, error) {
	if s.Current == nil {
		return nil, errors.New("no current signing key")
	}
	if v, ok := s.signers.Load(typ); ok {
		return v.(jose.Signer), nil
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	sig, err := jose.NewSigner(jose.SigningKey{
		Algorithm: s.Current.Algorithm,
		Key:       jose.JSONWebKey{Key: s.Current.private, KeyID: s.Current.ID, Algorithm: string(s.Current.Algorithm)},
	}, opts)
	if err != nil {
		return nil, err
	}
	v, _ := s.signers.LoadOrStore(typ, sig)
	return v.(jose.Signer), nil
}

// Manager keeps the signing keys.
type Manager struct {
	opts Options
	// leader reports whether this process may rotate on schedule; nil
	// means always (a single instance).
	leader   atomic.Pointer[func() bool]
	snap     atomic.Pointer[Snapshot]
	mu       sync.Mutex // serialises reloads and rotations in this process
	lastMiss atomic.Int64
}

// NewManager loads the keys, creating the first current and next keys if
// the store has none.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Algorithm == "" {
		opts.Algorithm = ES256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := generate(opts.Algorithm); err != nil {
		return nil, err
	}
	m := &Manager{opts: opts}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	if m.Snapshot().Current == nil {
		if err := m.rotate(ctx, true); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// CurrentKey reports when the current signing key became current and the
// rotation period (zero: no scheduled rotation), for metrics; ok is false
// without a current key.
func (m *Manager) CurrentKey() (activated time.Time, period time.Duration, ok bool) {
	cur := m.Snapshot().Current
	if cur == nil {
		return time.Time{}, 0, false
	}
	return cur.ActivatedAt, m.opts.RotationPeriod, true
}

// SetLeader makes scheduled rotation conditional on leader(): of several
// instances sharing a database, only the one holding the role rotates.
// Rotation on demand (Rotate) is not affected.
func (m *Manager) SetLeader(leader func() bool) { m.leader.Store(&leader) }

// Snapshot returns the current key snapshot.
func (m *Manager) Snapshot() *Snapshot { return m.snap.Load() }

// Reload rereads the keys from the store.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reloadLocked(ctx)
}

func (m *Manager) reloadLocked(ctx context.Context) error {
	recs, err := m.opts.Store.ListKeys(ctx, m.opts.Now())
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	s := &Snapshot{byID: make(map[string]*Key, len(recs))}
	var set jose.JSONWebKeySet
	for _, r := range recs {
		k, err := m.decode(r)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", r.ID, err)
		}
		s.byID[k.ID] = k
		set.Keys = append(set.Keys, k.Public)
		if r.State == store.KeyCurrent && (s.Current == nil) {
			s.Current = k
		}
	}
	if set.Keys == nil {
		set.Keys = []jose.JSONWebKey{}
	}
	if s.JWKS, err = json.Marshal(set); err != nil {
		return err
	}
	m.snap.Store(s)
	return nil
}

func (m *Manager) decode(r *store.SigningKey) (*Key, error) {
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(r.PublicKey); err != nil {
		return nil, err
	}
	k := &Key{ID: r.ID, Algorithm: jose.SignatureAlgorithm(r.Algorithm), State: r.State, ActivatedAt: r.ActivatedAt, Public: pub}
	if r.State == store.KeyRetired {
		return k, nil // never signs again: leave the private key sealed
	}
	der, err := m.opts.Sealer.Open(r.PrivateKey, []byte(r.ID))
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, errors.New("private key cannot sign")
	}
	k.private = signer
	return k, nil
}

// LookupOrReload finds a key by kid, rereading the store once if it is
// unknown (at most once a second, so unknown kids cannot flood the store).
func (m *Manager) LookupOrReload(ctx context.Context, kid string) (*Key, bool) {
	if k, ok := m.Snapshot().Lookup(kid); ok {
		return k, true
	}
	now := m.opts.Now().UnixNano()
	last := m.lastMiss.Load()
	if now-last < int64(time.Second) || !m.lastMiss.CompareAndSwap(last, now) {
		return nil, false
	}
	if err := m.Reload(ctx); err != nil {
		m.opts.Logger.Warn("reload signing keys", "err", err)
		return nil, false
	}
	return m.Snapshot().Lookup(kid)
}

// Rotate retires the current key, promotes the next key (already published
// in the JWKS) to current, and creates a new next key.
func (m *Manager) Rotate(ctx context.Context) error { return m.rotate(ctx, false) }

func (m *Manager) rotate(ctx context.Context, bootstrap bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reloadLocked(ctx); err != nil {
		return err
	}
	s := m.Snapshot()
	if bootstrap && s.Current != nil {
		return nil // someone else created the keys meanwhile
	}
	now := m.opts.Now()
	expect := ""
	if s.Current != nil {
		expect = s.Current.ID
	}
	hasNext := false
	for _, k := range s.byID {
		if k.State == store.KeyNext {
			hasNext = true
		}
	}
	var add []*store.SigningKey
	if !hasNext { // nothing to promote: a new key signs at once
		cur, err := m.newRecord(store.KeyCurrent, now)
		if err != nil {
			return err
		}
		add = append(add, cur)
	}
	next, err := m.newRecord(store.KeyNext, now)
	if err != nil {
		return err
	}
	add = append(add, next)
	err = m.opts.Store.RotateKeys(ctx, expect, now, now.Add(m.opts.RetainRetired), add...)
	if errors.Is(err, store.ErrConflict) {
		// Another process rotated at the same moment; its result stands.
		m.opts.Logger.Info("key rotation done elsewhere")
		return m.reloadLocked(ctx)
	}
	if err != nil {
		return fmt.Errorf("rotate signing keys: %w", err)
	}
	if expect == "" {
		m.opts.Logger.Info("created signing keys", "algorithm", m.opts.Algorithm, "next", next.ID)
	} else {
		m.opts.Logger.Info("signing keys rotated", "retired", expect, "next", next.ID)
	}
	return m.reloadLocked(ctx)
}

func (m *Manager) newRecord(state store.KeyState, now time.Time) (*store.SigningKey, error) {
	priv, err := generate(m.opts.Algorithm)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: m.opts.Algorithm, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp[:16])
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return nil, err
	}
	r := &store.SigningKey{
		ID:         pub.KeyID,
		Algorithm:  m.opts.Algorithm,
		State:      state,
		PrivateKey: m.opts.Sealer.Seal(der, []byte(pub.KeyID)),
		PublicKey:  pubJSON,
		CreatedAt:  now,
	}
	if state == store.KeyCurrent {
		r.ActivatedAt = now
	}
	return r, nil
}

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RS256:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q (use ES256, EdDSA or RS256)", alg)
}

// Tick is one round of maintenance, to be run every few seconds: it
// deletes retired keys past their publication time, rereads the keys (to
// see rotations made elsewhere), and rotates the current key once it has
// signed for RotationPeriod.
func (m *Manager) Tick(ctx context.Context) error {
	now := m.opts.Now()
	if _, err := m.opts.Store.DeleteExpiredKeys(ctx, now); err != nil {
		return err
	}
	if err := m.Reload(ctx); err != nil {
		return err
	}
	if m.opts.RotationPeriod <= 0 {
		return nil
	}
	if l := m.leader.Load(); l != nil && !(*l)() {
		return nil // another instance rotates
	}
	recs, err := m.opts.Store.ListKeys(ctx, now)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.State == store.KeyCurrent && now.Sub(r.ActivatedAt) >= m.opts.RotationPeriod {
			return m.Rotate(ctx)
		}
	}
	return nil
}

// Fingerprint is a short, stable digest of a published key set, used in
// logs to show which keys an instance serves.
func (s *Snapshot) Fingerprint() string {
	h := sha256.Sum256(s.JWKS)
	return base64.RawURLEncoding.EncodeToString(h[:6])
}

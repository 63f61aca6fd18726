// Package ststest starts a real STS for tests: the full server on a
// loopback port (httptest), over a real SQLite database in a temporary
// directory, with helpers to register clients and call the endpoints. Tests
// of every package that needs a running STS use it, so they all exercise
// the same assembly as `sts serve`.
package ststest

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/keybridge/sts/internal/audit"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/oauth"
	"go.opentelemetry.io/otel/trace"
)

// STS is a running server.
type STS struct {
	T      testing.TB
	URL    string // the issuer, http://127.0.0.1:PORT
	HTTP   *httptest.Server
	Server *server.Server
	Store  *sqlite.Store
	Keys   *keys.Manager
	Hasher *clientauth.Hasher
	// Accounts is the server's account service (IATs, certificates).
	Accounts *account.Service
	// Clock is the server's clock; tests may move it.
	Clock *Clock
	// TLS is set when the server serves HTTPS (Options.TLS); Do then
	// trusts its CA and presents no client certificate.
	TLS *TLS
}

// Clock is a settable clock, safe for concurrent use via atomic offset.
type Clock struct{ offset atomicDuration }

// Now is the real time plus the offset.
func (c *Clock) Now() time.Time { return time.Now().Add(c.offset.Load()) }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(d) }

// Options tune the server; zero values take test defaults.
type Options struct {
	Algorithm string
	Limits    policy.Limits
	Dir       string // data directory; a temporary one when empty
	// Registration settings (see server.Options); zero rates mean the
	// register package's defaults.
	RequireApproval     bool
	Publishers          map[string]*jose.JSONWebKeySet
	PerAccountPerMinute int
	PerAddressPerMinute int
	IATRequiredClaims   map[string][]string
	// Bounded storage (see server.Options).
	AuthFailuresPerAddress int
	AuthFailuresPerClient  int
	AuditRetention         time.Duration
	// AuditJournal is the audit journal's directory (see server.Options);
	// Start puts one in the data directory, as `sts serve` does with
	// SQLite, unless DirectAudit.
	AuditJournal string
	DirectAudit  bool
	// RegistrationTokenTTL: see server.Options (zero: no expiry).
	RegistrationTokenTTL time.Duration
	// Federation tunes fetching from trusted issuers (see
	// server.Options).
	Federation federation.Options
	// ClientAssertions tunes private_key_jwt (see server.Options), e.g.
	// AllowLoopbackJWKS for a jwks_uri served by the test.
	ClientAssertions clientauth.AssertionOptions
	// TLS, when set, serves HTTPS asking for client certificates, as
	// `sts serve --tls-cert --client-ca` does.
	TLS *TLS
	// Issuer, when set, is the server's issuer instead of its URL: the
	// one name of several instances behind a load balancer.
	Issuer string
	// DPoPNonceKey: see server.Options (nil: no DPoP nonces).
	DPoPNonceKey []byte
	// TracerProvider traces the server's requests (see server.Options;
	// tests use the SDK's in-memory exporter).
	TracerProvider trace.TracerProvider
	// DeviceBatchesPerMinute: see server.Options (zero: the default).
	DeviceBatchesPerMinute int
}

// Start runs an STS until the test ends.
func Start(t testing.TB, o Options) *STS {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered before StartOn's cleanup, so run after it.
	t.Cleanup(func() { st.Close() })
	if o.AuditJournal == "" && !o.DirectAudit {
		o.AuditJournal = filepath.Join(dir, "audit-journal")
	}
	return StartOn(t, st, o)
}

// Client is a registered client and its secret.
type Client struct {
	*store.Client
	Secret string
}

// CreateClient registers a client with a generated secret. The defaults
// are: both grants client_credentials and token exchange, JWT access
// tokens; mutate may change anything before it is stored.
func (s *STS) CreateClient(mutate func(*store.Client)) *Client {
	s.T.Helper()
	return s.CreateClientSecret(clientauth.NewSecret(), mutate)
}

// CreateClientSecret is CreateClient with a chosen secret (to test odd
// characters in ids and secrets).
func (s *STS) CreateClientSecret(secret string, mutate func(*store.Client)) *Client {
	s.T.Helper()
	return s.createClient("test client", secret, mutate)
}

// createClient stores a client with CreateClient's defaults, then
// mutate's changes, and the hash of secret ("" stores none: a key-based
// client).
func (s *STS) createClient(name, secret string, mutate func(*store.Client)) *Client {
	s.T.Helper()
	c := &store.Client{
		ID:          "c-" + randomID(),
		Name:        name,
		Status:      store.ClientActive,
		GrantTypes:  []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange},
		TokenFormat: store.TokenFormatJWT,
		CreatedAt:   time.Now(),
		UpdatedAt:   time.Now(),
	}
	if mutate != nil {
		mutate(c)
	}
	if secret != "" {
		c.SecretHash = s.Hasher.Hash(secret)
	}
	if err := s.Store.CreateClient(context.Background(), c); err != nil {
		s.T.Fatal(err)
	}
	return &Client{Client: c, Secret: secret}
}

// Response is a recorded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// Error is the body's "error" member.
func (r *Response) Error() string {
	s, _ := r.JSON()["error"].(string)
	return s
}

// Token decodes a success body.
func (r *Response) Token() oauth.TokenResponse {
	var tr oauth.TokenResponse
	_ = json.Unmarshal(r.Body, &tr)
	return tr
}

// Do sends a request and records the answer.
func (s *STS) Do(req *http.Request) *Response {
	s.T.Helper()
	hc := http.DefaultClient
	if s.TLS != nil {
		hc = s.TLS.anonymous
	}
	return s.DoWith(hc, req)
}

// PostForm posts form to path with Basic credentials of c (nil for none).
func (s *STS) PostForm(path string, c *Client, form url.Values) *Response {
	s.T.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.Header.Set("Authorization", BasicAuth(c.ID, c.Secret))
	}
	return s.Do(req)
}

// BasicAuth is the RFC 6749 §2.3.1 header value: id and secret
// form-url-encoded, then base64.
func BasicAuth(id, secret string) string { return oauth.BasicAuth(id, secret) }

// ClientCredentials obtains a token for c and fails the test otherwise.
func (s *STS) ClientCredentials(c *Client, extra url.Values) string {
	s.T.Helper()
	form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}
	for k, v := range extra {
		form[k] = v
	}
	r := s.PostForm(server.TokenPath, c, form)
	if r.Status != http.StatusOK {
		s.T.Fatalf("client_credentials: %d %s", r.Status, r.Body)
	}
	return r.Token().AccessToken
}

// Exchange posts a token-exchange request for c.
func (s *STS) Exchange(c *Client, subject, subjectType string, extra url.Values) *Response {
	s.T.Helper()
	form := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {subjectType},
	}
	for k, v := range extra {
		form[k] = v
	}
	return s.PostForm(server.TokenPath, c, form)
}

// ListAudit lists audit records as store.ListAudit does, once every
// record acknowledged so far is in the store (with an audit journal they
// reach it in the background).
func (s *STS) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	if err := s.Server.SyncAudit(ctx); err != nil && !errors.Is(err, audit.ErrClosed) {
		return nil, err
	}
	return s.Store.ListAudit(ctx, f)
}

// Audit returns the newest audit records, once the counts of coalesced
// refusals are written.
func (s *STS) Audit() []store.AuditRecord {
	s.T.Helper()
	// After Close everything is written already.
	if err := s.Server.FlushAudit(context.Background()); err != nil && !errors.Is(err, audit.ErrClosed) {
		s.T.Fatal(err)
	}
	recs, err := s.Store.ListAudit(context.Background(), store.AuditFilter{Limit: 1000})
	if err != nil {
		s.T.Fatal(err)
	}
	return recs
}

// Package server assembles the STS: it builds the endpoints from live
// dependencies, routes requests to them, wraps them in the shared
// middleware (request id, panic recovery, access log) and runs the HTTP
// server and the background maintenance until its context ends.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/clientip"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/endpoint/introspect"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/endpoint/revoke"
	tokenep "github.com/keybridge/sts/internal/endpoint/token"
	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/issuers"
	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/internal/metrics"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/portal"
	"github.com/keybridge/sts/internal/ratelimit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/cached"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/internal/trust"
	"github.com/keybridge/sts/oauth"
	"go.opentelemetry.io/otel/trace"
)

// Endpoint paths, relative to the issuer.
const (
	TokenPath      = "/token/oauth2"
	IntrospectPath = "/token/oauth2/introspect"
	RevokePath     = "/token/oauth2/revoke"
	// BatchPath is where a domain proxy obtains its devices' tokens
	// (issue 14; tokenep.Endpoint.ServeBatch).
	BatchPath  = "/token/batch"
	HealthPath = "/healthz"
	ReadyPath  = "/readyz"
)

// Options are the live dependencies of a server.
type Options struct {
	Issuer string
	Store  store.Store
	Keys   *keys.Manager
	Hasher *clientauth.Hasher
	Limits policy.Limits
	// Leeway tolerated on exp/nbf of presented tokens.
	Leeway time.Duration
	// ClientAssertions tunes private_key_jwt client authentication (its
	// Issuer, TokenEndpoint, JTIs, Leeway and Now come from the server).
	ClientAssertions clientauth.AssertionOptions
	// CleanupInterval is how often expired tokens and revocations are
	// deleted; zero means hourly.
	CleanupInterval time.Duration
	// Accounts verifies initial access tokens for registration and backs
	// the portal's account pages.
	Accounts *account.Service
	// Registration settings (see register.Options).
	RequireApproval     bool
	Publishers          map[string]*jose.JSONWebKeySet
	PerAccountPerMinute int
	PerAddressPerMinute int
	// AuthFailuresPerAddress and AuthFailuresPerClient bound failed
	// client authentications at the token, introspection and revocation
	// endpoints, per minute, per source address and per claimed client id
	// (zero: DefaultAuthFailuresPerMinute); correct credentials always
	// pass.
	AuthFailuresPerAddress int
	AuthFailuresPerClient  int
	// AuditRetention is how long audit records are kept; older ones are
	// deleted in the background. Zero keeps them forever.
	AuditRetention time.Duration
	// AuditJournal, when set, is the directory of the audit journal:
	// records are acknowledged once journaled and applied to Store in the
	// background (internal/audit.Journal); AuditSync flushes each journal
	// write to the disk.
	AuditJournal string
	AuditSync    bool
	// VerifiedTokenCache, when positive, caches up to this many verified
	// subject and actor JWTs (token.VerifiedCache); 0 verifies every
	// presentation.
	VerifiedTokenCache int
	// RegistrationTokenTTL is the lifetime of RFC 7592 registration access
	// tokens (clients.Registry); zero: they do not expire.
	RegistrationTokenTTL time.Duration
	// TrustedProxies decides the client address of each request (nil
	// trusts no proxy).
	TrustedProxies *clientip.Resolver
	// ClientCerts finds the client certificate of a request (TLS peer or
	// trusted proxy header) for tls_client_auth and
	// self_signed_tls_client_auth; nil: no certificate methods work. Run
	// asks TLS clients for a certificate when it is set.
	ClientCerts *clientcert.Source
	// DPoPNonceKey, when set, makes the token endpoint require server
	// nonces in DPoP proofs (RFC 9449 §8), derived from this key and the
	// time: instances sharing it accept each other's nonces, and nothing
	// is stored per nonce.
	DPoPNonceKey []byte
	// Devices checks radio devices' and domain proxies' certificates
	// and delegations (issue 14); nil: the server's Devices.
	// Devices need ClientCerts (the TLS handshake, or a trusted proxy's
	// header) to present their certificates.
	Devices tokenep.DeviceTrust
	// DeviceBatchesPerMinute bounds each domain proxy's /token/batch
	// requests (zero: tokenep.DefaultBatchesPerMinute).
	DeviceBatchesPerMinute int
	// Secure: the server is reached over TLS (portal cookies are Secure).
	Secure bool
	// KeyRotation is the signing keys' rotation period, which the portal's
	// dashboard shows (keys.Options.RotationPeriod); zero shows none.
	KeyRotation time.Duration
	// Federation tunes the fetching of trusted issuers' keys, discovery
	// documents and introspection answers (zero values: the defaults).
	Federation federation.Options
	// Admin, when set, is the admin listener: Run serves /metrics and
	// /debug/pprof/ there, and nowhere else (see also ServeAdmin).
	Admin net.Listener
	// TracerProvider, when set, traces each request (tracing.Setup builds
	// one from the OTEL_* variables); nil: tracing off.
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger
	Now            func() time.Time
}

// Server is an assembled STS.
type Server struct {
	opts    Options
	handler http.Handler
	audit   *audit.Writer
	cache   *cached.Store
	tracer  *tracing.Tracer
	// Metrics are the server's instruments and registry (served on the
	// admin listener).
	Metrics *metrics.Metrics
	// Trust is the live view of the trusted issuers and client rules.
	Trust *trust.Registry
	// Fetcher fetches and verifies what trusted issuers publish.
	Fetcher *federation.Fetcher
	// Tokens mints and validates tokens (exposed for tests and benchmarks).
	Tokens *token.Service
	// Token is the token endpoint.
	Token *tokenep.Endpoint
	// Devices manages device trust profiles and delegations, and keeps
	// the compiled device trust current (issue 14).
	Devices *devices.Service
}

// New builds the server; it loads the revocation set.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CleanupInterval == 0 {
		o.CleanupInterval = time.Hour
	}
	if o.AuthFailuresPerAddress <= 0 {
		o.AuthFailuresPerAddress = DefaultAuthFailuresPerMinute
	}
	if o.AuthFailuresPerClient <= 0 {
		o.AuthFailuresPerClient = DefaultAuthFailuresPerMinute
	}
	o.Limits.Issuer = o.Issuer
	tracer := tracing.New(o.TracerProvider)
	m := metrics.New(tracer)
	backend := observeStore(o.Store, m)
	if tracer != nil {
		// Outbound calls carry the request's trace (W3C traceparent).
		o.Federation.WrapTransport = tracer.Transport
		o.ClientAssertions.Fetch.WrapTransport = tracer.Transport
	}
	// The hot path reads clients and revocations from memory.
	cache, err := cached.New(ctx, o.Store, cached.Options{Now: o.Now, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	o.Store = cache
	ao := audit.Options{Logger: o.Logger, Now: o.Now, ObserveBatch: m.AuditBatch}
	if o.AuditJournal != "" {
		// Before serving: what a crash left in the journal is applied
		// first.
		j, err := audit.OpenJournal(ctx, o.AuditJournal, o.Store, o.AuditSync)
		if err != nil {
			return nil, err
		}
		ao.Journal = j
	}
	s := &Server{opts: o, audit: audit.NewWriter(o.Store, ao), cache: cache, tracer: tracer, Metrics: m}
	auth := &clientauth.Authenticator{
		Clients: o.Store, Accounts: cache.HotAccounts(), Hasher: o.Hasher, Now: o.Now,
		Failures: ratelimit.NewFailures(o.AuthFailuresPerAddress, o.AuthFailuresPerClient, o.Now),
		Certs:    o.ClientCerts,
	}
	ca := o.ClientAssertions
	ca.Issuer, ca.TokenEndpoint, ca.JTIs, ca.Leeway, ca.Now = o.Issuer, o.Issuer+TokenPath, o.Store, o.Leeway, o.Now
	if ca.Fetch.Logger == nil {
		ca.Fetch.Logger = o.Logger
	}
	auth.Assertions = clientauth.NewAssertions(ca)
	// A self-signed certificate client's jwks_uri is fetched the same way.
	auth.FetchJWKS = auth.Assertions.ClientKeys
	s.Tokens = &token.Service{Issuer: o.Issuer, Keys: o.Keys, Tokens: o.Store, Revocations: o.Store, Clients: o.Store, Accounts: cache.HotAccounts(), Leeway: o.Leeway, Now: o.Now}
	if o.VerifiedTokenCache > 0 {
		s.Tokens.Verified = token.NewVerifiedCache(o.VerifiedTokenCache)
	}
	if o.Federation.Logger == nil {
		o.Federation.Logger = o.Logger
	}
	if o.Federation.Now == nil {
		o.Federation.Now = o.Now
	}
	s.Fetcher = federation.NewFetcher(o.Federation)
	s.Trust = trust.New(o.Store, o.Logger, s.Fetcher.Forget)
	if err := s.Trust.Load(ctx); err != nil {
		return nil, fmt.Errorf("load trusted issuers: %w", err)
	}
	s.Devices = &devices.Service{Store: o.Store, Audit: s.audit, Now: o.Now, Logger: o.Logger}
	if err := s.Devices.Reload(ctx); err != nil {
		return nil, fmt.Errorf("load device profiles: %w", err)
	}
	fed := &tokenep.Federation{
		Registry: s.Trust, Fetcher: s.Fetcher, JTIs: o.Store,
		AssertionAudiences: []string{o.Issuer, o.Issuer + TokenPath},
	}
	// DPoP proofs are single-use across instances: their jtis go to the
	// store, with the assertions' (RFC 9449 §11.1).
	dv := &dpop.Verifier{Algorithms: DPoPAlgorithms, Replay: tokenep.NewReplayCache(o.Store), Now: o.Now}
	if len(o.DPoPNonceKey) > 0 {
		dv.Nonces = dpop.NewHMACNonces(o.DPoPNonceKey, DPoPNonceWindow)
	}
	if o.Devices == nil {
		o.Devices = s.Devices
	}
	s.Token = tokenep.New(tokenep.Options{Auth: auth, Tokens: s.Tokens, Audit: s.audit, Limits: o.Limits, Federation: fed, Logger: o.Logger, Now: o.Now,
		DPoP: dv, TokenURL: o.Issuer + TokenPath, Certs: o.ClientCerts, Metrics: m,
		Devices: o.Devices, BatchesPerMinute: o.DeviceBatchesPerMinute})
	s.watch(backend, auth.Assertions)
	md := Metadata(o.Issuer)
	md.TLSClientCertificateBoundAccessTokens = o.ClientCerts != nil && o.ClientCerts.ClientCAs != nil
	if o.ClientCerts != nil {
		// Devices exchange their certificates (issue 14).
		md.SubjectTokenTypesSupported = append(md.SubjectTokenTypesSupported, tokenep.TokenTypeMTLS)
	}
	disc := discovery.New(md, o.Keys, o.Now)
	registry := &clients.Registry{Store: o.Store, Hasher: o.Hasher, Now: o.Now, RegistrationTokenTTL: o.RegistrationTokenTTL}
	reg := register.New(register.Options{
		Issuer: o.Issuer, Store: o.Store, Accounts: o.Accounts, Clients: registry, Audit: s.audit,
		RequireApproval: o.RequireApproval, Publishers: o.Publishers,
		PerAccountPerMinute: o.PerAccountPerMinute, PerAddressPerMinute: o.PerAddressPerMinute,
		Logger: o.Logger, Now: o.Now,
	})
	portalHandler, err := portal.New(portal.Options{
		Issuer: o.Issuer, TokenEndpoint: o.Issuer + TokenPath, Store: syncedAudit{o.Store, s.audit}, Accounts: o.Accounts, Clients: registry, Keys: o.Keys,
		RequireApproval: o.RequireApproval, Secure: o.Secure, Logger: o.Logger, Now: o.Now,
		Audit: s.audit,
		// The dashboard shows the token endpoint's recent p50 and p99.
		Latency: m,
		// The portal's issuer pages go through the same service as the
		// CLI and the configuration file; a change is applied at once.
		Issuers:      &issuers.Service{Store: o.Store, Issuer: o.Issuer, Now: o.Now},
		TrustChanged: s.Trust.Load,
		// The dashboard shows the trusted issuers' keys this instance holds.
		IssuerKeys:  s.Fetcher.KeyStatus,
		KeyRotation: o.KeyRotation,
		// The device pages too; the service recompiles the device trust.
		Devices: s.Devices,
		Explain: func(ctx context.Context, clientID string, form url.Values) (*tokenep.Explanation, error) {
			return s.Explain(ctx, clientID, form)
		},
	})
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle(TokenPath, s.Token)
	mux.HandleFunc(BatchPath, s.Token.ServeBatch)
	mux.Handle(IntrospectPath, &introspect.Endpoint{Auth: auth, Tokens: s.Tokens, Log: o.Logger, Audit: s.audit})
	mux.Handle(RevokePath, &revoke.Endpoint{Auth: auth, Tokens: s.Tokens, Store: o.Store, Revocations: o.Store, Audit: s.audit, Log: o.Logger})
	mux.Handle(register.Path, reg)
	mux.Handle(register.Path+"/", reg)
	mux.Handle(portal.Path, portalHandler)
	mux.Handle(portal.Path+"/", portalHandler)
	mux.HandleFunc("GET "+discovery.MetadataPath, disc.ServeMetadata)
	mux.HandleFunc("GET "+discovery.OpenIDConfigPath, disc.ServeMetadata)
	mux.HandleFunc("GET "+discovery.JWKSPath, disc.ServeJWKS)
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET "+ReadyPath, s.ready)
	// The certificate source sees the connection's peer before the
	// proxy resolution rewrites it.
	s.handler = o.ClientCerts.Middleware(o.TrustedProxies.Middleware(s.middleware(mux)))
	return s, nil
}

// DPoPAlgorithms are the algorithms accepted in DPoP proofs: asymmetric
// only (RFC 9449 §4.2).
var DPoPAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256, jose.PS384, jose.PS512, jose.RS256}

// DPoPNonceWindow is how often the server's DPoP nonces change; a nonce is
// accepted for one to two windows.
const DPoPNonceWindow = 5 * time.Minute

// Metadata is the RFC 8414 document of a server with this issuer.
func Metadata(issuer string) oauth.Metadata {
	auth := []string{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost,
		oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth, oauth.AuthMethodPrivateKeyJWT}
	// id_token is accepted from trusted issuers (sts issuer add).
	accepted := []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeRefreshToken, oauth.TokenTypeIDToken}
	dpopAlgs := make([]string, len(DPoPAlgorithms))
	for i, a := range DPoPAlgorithms {
		dpopAlgs[i] = string(a)
	}
	return oauth.Metadata{
		DPoPSigningAlgValuesSupported:             dpopAlgs,
		Issuer:                                    issuer,
		TokenEndpoint:                             issuer + TokenPath,
		RegistrationEndpoint:                      issuer + register.Path,
		JWKSURI:                                   issuer + discovery.JWKSPath,
		ResponseTypesSupported:                    []string{},
		GrantTypesSupported:                       tokenep.GrantTypes(),
		TokenEndpointAuthMethodsSupported:         auth,
		RevocationEndpoint:                        issuer + RevokePath,
		RevocationEndpointAuthMethodsSupported:    auth,
		IntrospectionEndpoint:                     issuer + IntrospectPath,
		IntrospectionEndpointAuthMethodsSupported: auth,
		SubjectTokenTypesSupported:                accepted,
		ActorTokenTypesSupported:                  []string{oauth.TokenTypeAccessToken, oauth.TokenTypeJWT, oauth.TokenTypeIDToken},
		RequestedTokenTypesSupported:              policy.RequestedTokenTypes,
		TokenSigningAlgValuesSupported:            []string{keys.ES256, keys.EdDSA, keys.RS256},
	}
}

// TLSConfig is the TLS configuration of a server accepting client
// certificates: it requests one and does not require nor verify it.
func TLSConfig() *tls.Config {
	return &tls.Config{ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
}

// ServeAdmin makes Run serve /metrics and /debug/pprof/ on ln (the admin
// listener); call it before Run.
func (s *Server) ServeAdmin(ln net.Listener) { s.opts.Admin = ln }

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.opts.Store.IsRevoked(ctx, "readiness-probe"); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	if s.opts.Keys.Snapshot().Current == nil {
		http.Error(w, "no signing key", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

type statusWriter struct {
	http.ResponseWriter
	status int
	// What the endpoint said of the request, for the metrics.
	grant metrics.Grant
	code  oauth.ErrorCode
}

func (w *statusWriter) NoteGrant(g metrics.Grant)           { w.grant = g }
func (w *statusWriter) NoteOAuthError(code oauth.ErrorCode) { w.code = code }

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ep := endpointOf(r.URL.Path)
		// Traced: the span continues the caller's traceparent, and its
		// trace id goes to the log line and the audit record. Probes
		// are not traced (a span every few seconds per load balancer).
		var span trace.Span
		if ep != metrics.EndpointHealth {
			r, span = s.tracer.StartRequest(r, ep.String())
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					tracing.EndRequest(span, http.StatusInternalServerError)
					panic(p)
				}
				s.opts.Logger.Error("panic", "request_id", id, "panic", p)
				http.Error(sw, `{"error":"server_error"}`, http.StatusInternalServerError)
			}
			d := time.Since(start)
			s.Metrics.Request(ep, sw.grant, sw.status, sw.code, start, d)
			tracing.EndRequest(span, sw.status)
			if s.opts.Logger.Enabled(r.Context(), slog.LevelDebug) || sw.status >= 500 {
				attrs := []any{"request_id", id, "method", r.Method, "path", r.URL.Path,
					"status", sw.status, "duration", d, "remote", r.RemoteAddr}
				if span != nil {
					attrs = append(attrs, "trace_id", span.SpanContext().TraceID().String())
				}
				s.opts.Logger.Log(r.Context(), slog.LevelDebug, "request", attrs...)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// Run serves on ln and runs background maintenance until ctx ends, then
// shuts down gracefully: in-flight requests finish (up to 15 s) and queued
// audit records are written.
func (s *Server) Run(ctx context.Context, ln net.Listener, tlsCert, tlsKey string) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
	}
	if tlsCert != "" && s.opts.ClientCerts != nil {
		// Ask for a client certificate without requiring one, and verify
		// none in the handshake: secret clients share the port, and
		// self-signed certificates must get through; each certificate
		// method verifies what it needs (clientauth).
		srv.TLSConfig = TLSConfig()
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	// Instances sharing a database hear of each other's writes at once and
	// elect one of them to rotate keys; polling stays as the fallback.
	inner := s.cache.Store
	if feed, ok := inner.(store.ChangeFeed); ok {
		go s.listen(bg, feed)
	}
	if el, ok := inner.(store.Elections); ok {
		e := el.Elector("key-rotation")
		s.opts.Keys.SetLeader(e.Leader)
		go e.Run(bg)
	}
	go s.every(bg, KeyMaintenanceInterval, "signing key maintenance", s.opts.Keys.Tick)
	go s.every(bg, RevocationSyncInterval, "revocation sync", s.cache.Sync)
	go s.Trust.Run(bg, IssuerSyncInterval)
	go s.Devices.Run(bg, IssuerSyncInterval)
	go s.every(bg, s.opts.CleanupInterval, "cleanup", s.cleanup)
	if s.opts.AuditRetention > 0 {
		go s.retainAudit(bg)
	}

	if s.opts.Admin != nil {
		admin := &http.Server{
			Handler:           s.Metrics.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelWarn),
		}
		go func() {
			if err := admin.Serve(s.opts.Admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.opts.Logger.Warn("admin listener", "err", err)
			}
		}()
		defer admin.Close()
	}
	errc := make(chan error, 1)
	go func() {
		if tlsCert != "" {
			errc <- srv.ServeTLS(ln, tlsCert, tlsKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		s.opts.Logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopBG()
	s.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Explanation is what Explain reports (see tokenep.Endpoint.Explain).
type Explanation = tokenep.Explanation

// Explain reports the token endpoint's decisions for a request of the
// client clientID (form holds the token request's parameters) without
// issuing, storing or auditing anything: `sts policy explain` and the
// portal's explain page.
func (s *Server) Explain(ctx context.Context, clientID string, form url.Values) (*tokenep.Explanation, error) {
	c, err := s.opts.Store.GetClient(ctx, clientID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no client %q", clientID)
		}
		return nil, err
	}
	return s.Token.Explain(ctx, c, form), nil
}

// Close flushes the audit writer. The store is the caller's to close.
func (s *Server) Close() { s.audit.Close() }

// syncedAudit lists audit records once every record acknowledged so far
// is in the store: with a journal, records reach the store in the
// background, and an operator's page must show the action just taken.
type syncedAudit struct {
	store.Store
	w *audit.Writer
}

func (s syncedAudit) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	if err := s.w.Sync(ctx); err != nil && !errors.Is(err, audit.ErrClosed) {
		return nil, err
	}
	return s.Store.ListAudit(ctx, f)
}

// SyncAudit returns once every audit record acknowledged so far is in the
// store (see audit.Writer.Sync).
func (s *Server) SyncAudit(ctx context.Context) error { return s.audit.Sync(ctx) }

// FlushAudit writes the counts of coalesced refusals not yet written.
func (s *Server) FlushAudit(ctx context.Context) error { return s.audit.Flush(ctx) }

// Intervals of the background work.
const (
	// KeyMaintenanceInterval: how often keys are reread and rotated when due.
	KeyMaintenanceInterval = 10 * time.Second
	// RevocationSyncInterval bounds how long a revocation made on another
	// instance takes to be honoured here.
	RevocationSyncInterval = time.Second
	// IssuerSyncInterval bounds how long a change of a trusted issuer made
	// without the change feed (the CLI on SQLite) takes to be applied.
	IssuerSyncInterval = 2 * time.Second
)

// listen applies the changes other instances announce until ctx ends,
// reconnecting after failures.
func (s *Server) listen(ctx context.Context, feed store.ChangeFeed) {
	for ctx.Err() == nil {
		err := feed.Listen(ctx, func(ch store.Change) {
			var err error
			switch ch.Kind {
			case store.ChangeKeys:
				err = s.opts.Keys.Reload(ctx)
			case store.ChangeIssuer:
				err = s.Trust.Load(ctx)
			case store.ChangeDevice:
				err = s.Devices.Reload(ctx)
			default:
				err = s.cache.Apply(ctx, ch)
			}
			if err != nil && ctx.Err() == nil {
				s.opts.Logger.Warn("apply change", "kind", ch.Kind, "err", err)
			}
		})
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("change feed lost; polling until it is back", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// every runs fn every interval until ctx ends, logging its failures.
func (s *Server) every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn(what, "err", err)
		}
	}
}

// DefaultAuthFailuresPerMinute is the default budget of failed client
// authentications per source address and per client id: far above what a
// misconfigured client retrying produces, far below a flood.
const DefaultAuthFailuresPerMinute = 30

// retainAudit deletes the audit records older than the retention, at start
// and then with the cleanup, until ctx ends. It starts at once so that a
// server restarted more often than the cleanup interval still prunes.
func (s *Server) retainAudit(ctx context.Context) {
	prune := func(ctx context.Context) error {
		n, err := s.PruneAudit(ctx)
		if n > 0 {
			s.opts.Logger.Info("audit retention", "deleted", n, "retention", s.opts.AuditRetention)
		}
		return err
	}
	if err := prune(ctx); err != nil && ctx.Err() == nil {
		s.opts.Logger.Warn("audit retention", "err", err)
	}
	s.every(ctx, s.opts.CleanupInterval, "audit retention", prune)
}

// PruneAudit deletes the audit records older than AuditRetention (none
// when it is zero) and returns how many.
func (s *Server) PruneAudit(ctx context.Context) (int, error) {
	if s.opts.AuditRetention <= 0 {
		return 0, nil
	}
	return s.opts.Store.DeleteAuditBefore(ctx, s.opts.Now().Add(-s.opts.AuditRetention))
}

// cleanup deletes expired tokens, revocations, used IAT ids and portal
// sessions.
func (s *Server) cleanup(ctx context.Context) error {
	now := s.opts.Now()
	// Keep token records a day past expiry so introspection and audits of
	// recent tokens still find them.
	if _, err := s.opts.Store.DeleteExpiredTokens(ctx, now.Add(-24*time.Hour)); err != nil {
		return err
	}
	if _, err := s.opts.Store.DeleteExpiredRevocations(ctx, now.Add(-s.opts.Leeway-time.Minute)); err != nil {
		return err
	}
	if _, err := s.opts.Store.DeleteExpiredJTIs(ctx, now); err != nil {
		return err
	}
	_, err := s.opts.Store.DeleteExpiredSessions(ctx, now)
	return err
}

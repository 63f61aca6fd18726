// Package backend is the HTTP logic of the example resource server that
// plays https://backend.example.com/api from the seed: it accepts tokens
// the STS issued for that audience and tells the caller who it is, on whose
// behalf it acts, and with which scope. The main package in the parent
// directory serves it; the end-to-end tests run it in-process.
package backend

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/resource"
)

// DefaultAudience is the seed's backend.
const DefaultAudience = "https://backend.example.com/api"

// Options configure the backend.
type Options struct {
	// Issuer is the STS's issuer URL; jwks_uri (and the introspection
	// endpoint) are discovered from its RFC 8414 metadata.
	Issuer string
	// Audience identifies the backend; DefaultAudience when empty.
	Audience string
	// Scope is required in every token; none when empty.
	Scope string
	// ClientID and ClientSecret, when set, let the backend introspect
	// opaque tokens (sts_at_...) at the STS.
	ClientID     string
	ClientSecret string
	// IntrospectionCacheTTL bounds how long an introspection answer is
	// reused; one minute when zero.
	IntrospectionCacheTTL time.Duration
	// MinRefreshInterval spaces JWK set fetches caused by unknown key ids;
	// 30 seconds when zero.
	MinRefreshInterval time.Duration
	// ClientCertHeader and TrustedProxies: behind a TLS-terminating proxy,
	// the header in which it forwards the client certificate (URL-encoded
	// PEM) and the proxies believed, for certificate-bound tokens (RFC
	// 8705 §3). Without them, the certificate of the TLS handshake counts
	// (serve with tls.RequestClientCert).
	ClientCertHeader string
	TrustedProxies   []string
	// PublicURL, when set, is the scheme and host the callers use
	// (https://backend.example.com), compared with the htu of DPoP proofs
	// (RFC 9449 §4.3) when a proxy changes them; by default the request's.
	PublicURL string
	// HTTPClient calls the STS; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Logger receives the reasons for refusals; none when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Answer is the JSON body of a successful call to the backend.
type Answer struct {
	// Message greets the caller in the backend's name.
	Message string `json:"message"`
	// Subject is the token's sub: on whose behalf the call is made.
	Subject string `json:"sub"`
	// ClientID is the client the token was issued to.
	ClientID string `json:"client_id"`
	// Scope is the token's scope.
	Scope string `json:"scope"`
	// Actors is the act chain, most recent first.
	Actors []oauth.Actor `json:"actors,omitempty"`
	// Introspected tells an opaque token checked by introspection from a
	// JWT verified offline.
	Introspected bool `json:"introspected"`
	// Confirmation is the token's binding (cnf) that the call proved:
	// the client certificate (x5t#S256) or DPoP key (jkt); nil for a
	// bearer token.
	Confirmation *oauth.Confirmation `json:"cnf,omitempty"`
}

// New builds the backend's handler: GET /api (and below) behind the token
// middleware, and GET /healthz.
func New(ctx context.Context, o Options) (http.Handler, error) {
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	cfg := resource.Config{
		Issuer: o.Issuer, Audience: o.Audience, Realm: o.Audience,
		MinRefreshInterval: o.MinRefreshInterval,
		HTTPClient:         o.HTTPClient, Logger: o.Logger, Now: o.Now,
		ClientCertHeader: o.ClientCertHeader, TrustedProxies: o.TrustedProxies,
	}
	if o.PublicURL != "" {
		base := strings.TrimSuffix(o.PublicURL, "/")
		cfg.DPoP = &resource.DPoPConfig{RequestURL: func(r *http.Request) string { return base + r.URL.EscapedPath() }}
	}
	if o.ClientID != "" {
		cfg.Introspection = &resource.IntrospectionConfig{
			ClientID: o.ClientID, ClientSecret: o.ClientSecret, CacheTTL: o.IntrospectionCacheTTL,
		}
	}
	v, err := resource.NewVerifier(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var scopes []string
	if o.Scope != "" {
		scopes = []string{o.Scope}
	}
	api := v.Middleware(serveAPI(o.Audience), scopes...)
	mux := http.NewServeMux()
	mux.Handle("GET /api", api)
	mux.Handle("GET /api/", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux, nil
}

func serveAPI(audience string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		var cnf *oauth.Confirmation
		if !c.Confirmation.IsZero() {
			cnf = &c.Confirmation
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Answer{
			Confirmation: cnf,
			Message:      "hello from " + audience,
			Subject:      c.Subject,
			ClientID:     c.ClientID,
			Scope:        c.Scope,
			Actors:       c.ActorChain(),
			Introspected: c.Introspected,
		})
	})
}

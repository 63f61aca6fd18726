// Package gateway is the HTTP logic of the example exchange service: rs08
// from the seed, a resource server that "assumes the role of the client".
// It verifies the caller's token (issued for rs08's own audience),
// exchanges it at the STS for a token aimed at the backend (RFC 8693), and
// calls the backend with that token. The main package in the parent
// directory serves it; the end-to-end tests run it in-process.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/resource"
	"github.com/keybridge/sts/stsclient"
)

// Defaults of the seed's story.
const (
	DefaultAudience        = "https://rs08.example.com"
	DefaultBackendAudience = "https://backend.example.com/api"
)

// Options configure the gateway.
type Options struct {
	// Issuer is the STS's issuer URL; its token endpoint and keys are
	// discovered from the RFC 8414 metadata.
	Issuer string
	// Audience is the gateway's own audience, which callers' tokens must
	// name; DefaultAudience when empty.
	Audience string
	// ClientID and ClientSecret are the gateway's credentials at the STS.
	ClientID     string
	ClientSecret string
	// BackendURL is the URL called with the exchanged token.
	BackendURL string
	// BackendAudience is sent as the exchange's resource parameter;
	// DefaultBackendAudience when empty.
	BackendAudience string
	// Scope, when set, is the scope asked for in the exchange.
	Scope string
	// HTTPClient calls the STS and the backend; http.DefaultClient when
	// nil.
	HTTPClient *http.Client
	// Logger receives refusals of the exchange; none when nil.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

type gateway struct {
	sts     *stsclient.Client
	o       Options
	hc      *http.Client
	log     *slog.Logger
	backend string
}

// New builds the gateway's handler: every GET on / is verified, exchanged
// and forwarded to the backend; the backend's answer is relayed.
func New(ctx context.Context, o Options) (http.Handler, error) {
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	if o.BackendAudience == "" {
		o.BackendAudience = DefaultBackendAudience
	}
	if o.BackendURL == "" || o.ClientID == "" {
		return nil, errors.New("gateway: BackendURL and ClientID are required")
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	md, err := stsclient.Discover(ctx, hc, o.Issuer)
	if err != nil {
		return nil, err
	}
	v, err := resource.NewVerifier(ctx, resource.Config{
		Issuer: o.Issuer, Audience: o.Audience, JWKSURL: md.JWKSURI, Realm: o.Audience,
		HTTPClient: hc, Logger: log, Now: o.Now,
	})
	if err != nil {
		return nil, err
	}
	g := &gateway{
		sts: &stsclient.Client{
			TokenURL: md.TokenEndpoint, ClientID: o.ClientID, ClientSecret: o.ClientSecret,
			HTTPClient: hc, Now: o.Now,
		},
		o: o, hc: hc, log: log,
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", v.Middleware(http.HandlerFunc(g.serve)))
	return mux, nil
}

// serve runs after the middleware accepted the caller's token.
func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	// The middleware checked the header; the token is its second word.
	_, subject, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	subject = strings.TrimSpace(subject)
	req := stsclient.ExchangeRequest{
		SubjectToken:     subject,
		SubjectTokenType: oauth.TokenTypeAccessToken,
		Resource:         []string{g.o.BackendAudience},
	}
	if g.o.Scope != "" {
		req.Scope = strings.Fields(g.o.Scope)
	}
	ex, err := g.sts.Exchange(r.Context(), req)
	if err != nil {
		// The caller's token was valid for us but the STS would not trade
		// it (e.g. scope or policy): a failure of this gateway's upstream.
		g.log.Warn("token exchange refused", "err", err)
		var e *stsclient.Error
		detail := "token exchange failed"
		if errors.As(err, &e) && e.Code != "" {
			detail = fmt.Sprintf("token exchange refused: %s", e.Code)
		}
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": detail})
		return
	}
	breq, err := http.NewRequestWithContext(r.Context(), http.MethodGet, g.o.BackendURL, nil)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	breq.Header.Set("Authorization", "Bearer "+ex.AccessToken)
	resp, err := g.hc.Do(breq)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "backend unreachable"})
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "WWW-Authenticate"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 1<<20))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

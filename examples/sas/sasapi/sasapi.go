// Package sasapi is the HTTP logic of the example "SAS-like" resource
// server: a spectrum access system's front that accepts only device
// tokens (Key Bridge STS issue 14) bound to the certificate the caller
// presents, whether the CBSD obtained its token itself or its domain
// proxy did. The main package in the parent directory serves it; the
// end-to-end tests run it in-process.
package sasapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/keybridge/sts/resource"
)

// DefaultAudience is the example SAS.
const DefaultAudience = "https://sas.example.com/v1.3"

// Options configure the SAS.
type Options struct {
	// Issuer is the STS's issuer URL (its jwks_uri is discovered unless
	// JWKSURL is set).
	Issuer  string
	JWKSURL string
	// Audience identifies the SAS; DefaultAudience when empty.
	Audience string
	// Scope is required in every token; none when empty.
	Scope string
	// ClientCertHeader and TrustedProxies: behind a TLS-terminating
	// proxy, where the caller's certificate is forwarded (see
	// resource.Config). Without them, the TLS handshake's certificate.
	ClientCertHeader string
	TrustedProxies   []string
	HTTPClient       *http.Client
	Logger           *slog.Logger
	Now              func() time.Time
}

// Registration is one entry of a registration request (WINNF-TS-0016
// §10.1, reduced to the device's identifiers).
type Registration struct {
	FCCID  string `json:"fccId"`
	Serial string `json:"cbsdSerialNumber"`
}

// Response is a SAS response code (0 SUCCESS, 103 INVALID_VALUE).
type Response struct {
	Code    int    `json:"responseCode"`
	Message string `json:"responseMessage,omitempty"`
}

// RegistrationResponse answers one Registration, in order.
type RegistrationResponse struct {
	CBSDID   string   `json:"cbsdId,omitempty"`
	Response Response `json:"response"`
}

// WhoAmI is the answer of GET /v1.3/whoami: the device the token names.
type WhoAmI struct {
	resource.Device
	Scope string `json:"scope"`
}

// New builds the SAS's handler: GET /v1.3/whoami and POST
// /v1.3/registration behind resource.Verifier.DeviceMiddleware, and GET
// /healthz.
func New(ctx context.Context, o Options) (http.Handler, error) {
	if o.Audience == "" {
		o.Audience = DefaultAudience
	}
	v, err := resource.NewVerifier(ctx, resource.Config{
		Issuer: o.Issuer, JWKSURL: o.JWKSURL, Audience: o.Audience, Realm: o.Audience,
		ClientCertHeader: o.ClientCertHeader, TrustedProxies: o.TrustedProxies,
		HTTPClient: o.HTTPClient, Logger: o.Logger, Now: o.Now,
	})
	if err != nil {
		return nil, err
	}
	var scopes []string
	if o.Scope != "" {
		scopes = []string{o.Scope}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1.3/whoami", v.DeviceMiddleware(http.HandlerFunc(whoami), scopes...))
	mux.Handle("POST /v1.3/registration", v.DeviceMiddleware(http.HandlerFunc(register), scopes...))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux, nil
}

func whoami(w http.ResponseWriter, r *http.Request) {
	d, _ := resource.DeviceFromContext(r.Context())
	c, _ := resource.ClaimsFromContext(r.Context())
	writeJSON(w, http.StatusOK, WhoAmI{Device: *d, Scope: c.Scope})
}

// register answers each entry: SUCCESS for the token's own device,
// INVALID_VALUE for any other (a token speaks for one device only).
func register(w http.ResponseWriter, r *http.Request) {
	d, _ := resource.DeviceFromContext(r.Context())
	var req struct {
		Registrations []Registration `json:"registrationRequest"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil || len(req.Registrations) == 0 {
		http.Error(w, `{"error":"a registrationRequest array is required"}`, http.StatusBadRequest)
		return
	}
	out := make([]RegistrationResponse, len(req.Registrations))
	for i, reg := range req.Registrations {
		if d.FCCID == "" || reg.FCCID != d.FCCID || reg.Serial != d.Serial {
			out[i].Response = Response{Code: 103, Message: "the token is not this device's"}
			continue
		}
		out[i] = RegistrationResponse{CBSDID: d.Subject, Response: Response{Code: 0}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"registrationResponse": out})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

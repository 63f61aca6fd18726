package resource_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keybridge/sts/resource"
)

// TestRFC6750_3_Middleware checks every answer of the middleware, over
// real HTTP.
func TestRFC6750_3_Middleware(t *testing.T) {
	ti := newTestIssuer(t)
	clk := newClock()
	kid := ti.addKey("ES256", true)
	v := newVerifier(t, ti, clk, func(c *resource.Config) { c.Realm = "backend" })
	api := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := resource.ClaimsFromContext(r.Context())
		if !ok {
			http.Error(w, "no claims", 500)
			return
		}
		io.WriteString(w, c.Subject+" via "+c.ActorChain()[0].Subject)
	}), "api")
	admin := v.Middleware(http.NotFoundHandler(), "api", "admin")
	mux := http.NewServeMux()
	mux.Handle("/api", api)
	mux.Handle("/admin", admin)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	good := ti.sign(kid, "ES256", "at+jwt", ti.claims(clk.Now()))
	other := ti.claims(clk.Now())
	other["aud"] = "https://other.example"
	wrongAud := ti.sign(kid, "ES256", "at+jwt", other)

	for _, tc := range []struct {
		name, path string
		auth       []string
		status     int
		challenge  string
		errCode    string
	}{
		{"valid", "/api", []string{"Bearer " + good}, 200, "", ""},
		{"scheme is case-insensitive", "/api", []string{"bearer " + good}, 200, "", ""},
		{"no token", "/api", nil, 401, `Bearer realm="backend"`, ""},
		{"basic credentials", "/api", []string{"Basic dTpw"}, 401, `Bearer realm="backend"`, ""},
		{"other audience", "/api", []string{"Bearer " + wrongAud}, 401,
			`Bearer realm="backend", error="invalid_token", error_description="token for another audience"`, "invalid_token"},
		{"garbage", "/api", []string{"Bearer a.b.c"}, 401,
			`Bearer realm="backend", error="invalid_token", error_description="malformed token"`, "invalid_token"},
		{"not a b64token", "/api", []string{"Bearer a b"}, 400,
			`Bearer realm="backend", error="invalid_request", error_description="malformed Authorization header"`, "invalid_request"},
		{"two headers", "/api", []string{"Bearer " + good, "Bearer " + good}, 400, "", "invalid_request"},
		{"missing scope", "/admin", []string{"Bearer " + good}, 403,
			`Bearer realm="backend", error="insufficient_scope", error_description="the token lacks a required scope", scope="api admin"`, "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			for _, a := range tc.auth {
				req.Header.Add("Authorization", a)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			got := resp.Header.Get("WWW-Authenticate")
			if tc.challenge != "" && got != tc.challenge {
				t.Errorf("WWW-Authenticate = %s\n                  want %s", got, tc.challenge)
			}
			if tc.status == 200 {
				if got != "" || string(body) != "user-1 via rs08" {
					t.Errorf("success: challenge %q body %q", got, body)
				}
				return
			}
			if !strings.HasPrefix(got, "Bearer") {
				t.Errorf("no Bearer challenge: %q", got)
			}
			var e struct{ Error string }
			json.Unmarshal(body, &e)
			if e.Error != tc.errCode {
				t.Errorf("body error %q, want %q", e.Error, tc.errCode)
			}
		})
	}

	// Keys unreachable: 503, not a refusal of the token.
	ti2 := newTestIssuer(t)
	ti2.jwksStatus = 502
	v2 := newVerifier(t, ti2, clk, nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+good)
	v2.Middleware(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("keys unavailable: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

package resource_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/resource"
)

// exampleIssuer is a stand-in authorization server so the examples run
// without network: it publishes RFC 8414 metadata and a JWK set, and signs
// access tokens the way Key Bridge STS does (ES256, typ at+jwt).
type exampleIssuer struct {
	*httptest.Server
	key *ecdsa.PrivateKey
}

func newExampleIssuer() *exampleIssuer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ei := &exampleIssuer{key: k}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(oauth.Metadata{Issuer: ei.URL, JWKSURI: ei.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	ei.Server = httptest.NewServer(mux)
	return ei
}

// token is an exchanged token: rs08 acting for alice, for the backend.
func (ei *exampleIssuer) token(aud string) string {
	s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ei.key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	now := time.Now()
	b, _ := json.Marshal(map[string]any{
		"iss": ei.URL, "sub": "alice", "aud": aud, "client_id": "rs08", "scope": "api",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(), "jti": "j1",
		"act": map[string]any{"sub": "rs08", "act": map[string]any{"sub": "gateway"}},
	})
	obj, _ := s.Sign(b)
	tok, _ := obj.CompactSerialize()
	return tok
}

// A resource server protects its API with the middleware; the handler
// reads the verified claims from the request context.
func Example() {
	issuer := newExampleIssuer()
	defer issuer.Close()
	ctx := context.Background()

	v, err := resource.NewVerifier(ctx, resource.Config{
		Issuer:   issuer.URL, // jwks_uri is discovered from its metadata
		Audience: "https://backend.example.com/api",
		Realm:    "backend",
	})
	if err != nil {
		log.Fatal(err)
	}
	api := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s (client %s)", c.Subject, c.ClientID)
	}), "api")
	srv := httptest.NewServer(api)
	defer srv.Close()

	for _, tok := range []string{
		issuer.token("https://backend.example.com/api"),
		issuer.token("https://other.example.com"),
		"",
	} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, string(body))
		} else {
			fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 200 hello alice (client rs08)
	// 401 Bearer realm="backend", error="invalid_token", error_description="token for another audience"
	// 401 Bearer realm="backend"
}

// Verify returns the claims, with accessors for scope, client_id and the
// delegation chain, or an error that says why the token was refused.
func ExampleVerifier_Verify() {
	issuer := newExampleIssuer()
	defer issuer.Close()
	ctx := context.Background()
	v, err := resource.NewVerifier(ctx, resource.Config{
		Issuer:   issuer.URL,
		Audience: "https://backend.example.com/api",
		JWKSURL:  issuer.URL + "/.well-known/jwks.json",
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := v.Verify(ctx, issuer.token("https://backend.example.com/api"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Subject, c.ClientID, c.Scopes(), c.HasScope("api"))
	for _, a := range c.ActorChain() {
		fmt.Println("acted by", a.Subject)
	}

	_, err = v.Verify(ctx, issuer.token("https://other.example.com"))
	fmt.Println(errors.Is(err, resource.ErrAudience))
	// Output:
	// alice rs08 [api] true
	// acted by rs08
	// acted by gateway
	// true
}

// Opaque tokens are introspected (RFC 7662) when introspection is
// configured; the endpoint is discovered from the metadata when URL is
// empty.
func ExampleIntrospectionConfig() {
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("token") != "sts_at_example" {
			json.NewEncoder(w).Encode(oauth.IntrospectionResponse{Active: false})
			return
		}
		json.NewEncoder(w).Encode(oauth.IntrospectionResponse{
			Active: true, Sub: "alice", ClientID: "rs08", Scope: "api", TokenType: "Bearer",
			Aud: oauth.Audience{"https://backend.example.com/api"}, Iss: srv.URL,
			Exp: time.Now().Add(time.Hour).Unix(),
		})
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()

	v, err := resource.NewVerifier(context.Background(), resource.Config{
		Issuer:   srv.URL,
		Audience: "https://backend.example.com/api",
		JWKSURL:  srv.URL + "/jwks", // unused: no JWT in this example
		Introspection: &resource.IntrospectionConfig{
			URL: srv.URL + "/introspect", ClientID: "backend", ClientSecret: "secret",
			CacheSize: 1000, CacheTTL: 30 * time.Second,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := v.Verify(context.Background(), "sts_at_example")
	fmt.Println(c.Subject, c.Introspected, err)
	_, err = v.Verify(context.Background(), "sts_at_revoked")
	fmt.Println(errors.Is(err, resource.ErrInactive))
	// Output:
	// alice true <nil>
	// true
}

// A SAS-like service accepts only radio devices' tokens bound to the
// certificate the caller presents: a CBSD's own, or its domain proxy's.
func ExampleVerifier_DeviceMiddleware() {
	ctx := context.Background()
	v, err := resource.NewVerifier(ctx, resource.Config{
		Issuer:   "https://sts.example.com",
		Audience: "https://sas.example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/v1.3/", v.DeviceMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := resource.DeviceFromContext(r.Context())
		fmt.Fprintf(w, "hello %s (FCC ID %s, serial %s, via %q)\n", d.Subject, d.FCCID, d.Serial, d.Proxy)
	})))
	// The certificate is asked for in the handshake; the token names it.
	srv := &http.Server{Addr: ":8443", TLSConfig: &tls.Config{ClientAuth: tls.RequestClientCert}}
	log.Fatal(srv.ListenAndServeTLS("sas.pem", "sas-key.pem"))
}

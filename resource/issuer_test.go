package resource_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/oauth"
	"github.com/keybridge/sts/stsclient"
)

const audience = "https://backend.example.com/api"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testIssuer is a small authorization server for the verifier's tests: it
// publishes metadata and a JWK set of keys the test controls, counts the
// fetches, and answers introspection from a table. Tests against the real
// STS are in internal/e2e.
type testIssuer struct {
	*httptest.Server
	t testing.TB

	jwksFetches atomic.Int64
	introCalls  atomic.Int64

	mu         sync.Mutex
	signers    map[string]crypto.Signer
	published  []json.RawMessage // the JWK set's members, in order
	extraKeys  []json.RawMessage // odd members published as they are
	jwksStatus int               // when non-zero, the JWK set answers this
	maxAge     int
	intro      map[string]oauth.IntrospectionResponse
	introCnf   map[string]map[string]any // the cnf of an introspected token
	introAuth  string                    // the last introspection Authorization header
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	ti := &testIssuer{t: t, signers: map[string]crypto.Signer{}, maxAge: 300, intro: map[string]oauth.IntrospectionResponse{}, introCnf: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+stsclient.MetadataPath, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(oauth.Metadata{
			Issuer: ti.URL, TokenEndpoint: ti.URL + "/token", JWKSURI: ti.URL + "/jwks",
			IntrospectionEndpoint: ti.URL + "/introspect",
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksFetches.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		if ti.jwksStatus != 0 {
			http.Error(w, "unavailable", ti.jwksStatus)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(ti.maxAge))
		keys := append(append([]json.RawMessage{}, ti.extraKeys...), ti.published...)
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		ti.introCalls.Add(1)
		r.ParseForm()
		ti.mu.Lock()
		ti.introAuth = r.Header.Get("Authorization")
		resp := ti.intro[r.PostForm.Get("token")]
		cnf := ti.introCnf[r.PostForm.Get("token")]
		ti.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if cnf != nil {
			var m map[string]any
			b, _ := json.Marshal(resp)
			json.Unmarshal(b, &m)
			m["cnf"] = cnf
			json.NewEncoder(w).Encode(m)
			return
		}
		json.NewEncoder(w).Encode(resp)
	})
	ti.Server = httptest.NewServer(mux)
	t.Cleanup(ti.Close)
	return ti
}

// addKey creates a key for alg; publish puts it in the JWK set now.
func (ti *testIssuer) addKey(alg string, publish bool) string {
	ti.t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil || priv == nil {
		ti.t.Fatalf("key %s: %v", alg, err)
	}
	kid := alg + "-" + strconv.Itoa(len(ti.signers)+1)
	ti.mu.Lock()
	ti.signers[kid] = priv
	ti.mu.Unlock()
	if publish {
		ti.publish(kid, alg)
	}
	return kid
}

func (ti *testIssuer) publish(kid, alg string) {
	ti.t.Helper()
	ti.mu.Lock()
	defer ti.mu.Unlock()
	b, err := jose.JSONWebKey{Key: ti.signers[kid].Public(), KeyID: kid, Algorithm: alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		ti.t.Fatal(err)
	}
	ti.published = append(ti.published, b)
}

// claims are valid claims for audience at now.
func (ti *testIssuer) claims(now time.Time) map[string]any {
	return map[string]any{
		"iss": ti.URL, "sub": "user-1", "aud": audience,
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "id-1", "client_id": "rs08", "scope": "api read",
		"act": map[string]any{"sub": "rs08", "act": map[string]any{"sub": "gateway"}},
	}
}

// sign signs claims with the key kid using alg, writing typ (none when
// empty) and kid (none when withKID is false) in the header.
func (ti *testIssuer) sign(kid, alg, typ string, claims map[string]any) string {
	ti.t.Helper()
	ti.mu.Lock()
	priv := ti.signers[kid]
	ti.mu.Unlock()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	var key any = jose.JSONWebKey{Key: priv, KeyID: kid}
	if kid == "" {
		for _, s := range ti.signers { // the only key
			key = s
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		ti.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		ti.t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		ti.t.Fatal(err)
	}
	return s
}

// unsigned builds a compact JWS with the given header and no signature
// check possible: for alg "none" and HMAC attacks.
func unsigned(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	e := base64.RawURLEncoding
	return e.EncodeToString(h) + "." + e.EncodeToString(c) + "." + e.EncodeToString(sig)
}

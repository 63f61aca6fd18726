package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/clientauth"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// pkKey is a client's ES256 key pair.
func pkKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: "ES256", Use: "sig"}
}

// pkJWKS is the public JWK set JSON of keys.
func pkJWKS(t *testing.T, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, k.Public())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pkSign signs claims with key (its alg and kid).
func pkSign(t *testing.T, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if key.KeyID != "" {
		opts = opts.WithHeader("kid", key.KeyID)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pkClaims are the claims of a valid client assertion of id for aud.
func pkClaims(id, aud, jti string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": id, "sub": id, "aud": aud, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
}

// pkForm is a client_credentials form authenticated by assertion.
func pkForm(assertion string, extra ...string) url.Values {
	f := url.Values{
		"grant_type":            {oauth.GrantTypeClientCredentials},
		"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer},
		"client_assertion":      {assertion},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

func pkPost(s *ststest.STS, path string, form url.Values, basic string) *ststest.Response {
	s.T.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		s.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != "" {
		req.Header.Set("Authorization", basic)
	}
	return s.Do(req)
}

func pkClient(s *ststest.STS, b store.Binding) *ststest.Client {
	return s.CreateClient(func(c *store.Client) {
		c.AuthMethod = oauth.AuthMethodPrivateKeyJWT
		c.Binding = b
		c.Audiences = []string{"https://api.example.com"}
	})
}

// TestPrivateKeyJWT: a client registered with a public key set
// authenticates at the token, introspection and revocation endpoints with
// a client assertion (RFC 7523 §2.2) whose aud is the issuer, the token
// endpoint or the endpoint it is sent to.
func TestPrivateKeyJWT(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	key := pkKey(t, "k1")
	c := pkClient(s, store.Binding{JWKS: pkJWKS(t, key)})
	tokenURL := s.URL + server.TokenPath

	for i, aud := range []string{s.URL, tokenURL} {
		r := pkPost(s, server.TokenPath, pkForm(pkSign(t, key, pkClaims(c.ID, aud, "ok-"+string(rune('a'+i)))), "client_id", c.ID), "")
		if r.Status != http.StatusOK || r.Token().AccessToken == "" {
			t.Fatalf("aud %s: %d %s", aud, r.Status, r.Body)
		}
	}
	at := pkPost(s, server.TokenPath, pkForm(pkSign(t, key, pkClaims(c.ID, tokenURL, "ok-c"))), "").Token().AccessToken

	// Introspection with aud = the introspection endpoint.
	f := url.Values{
		"token":                 {at},
		"client_assertion_type": {oauth.ClientAssertionTypeJWTBearer},
		"client_assertion":      {pkSign(t, key, pkClaims(c.ID, s.URL+server.IntrospectPath, "intro"))},
	}
	r := pkPost(s, server.IntrospectPath, f, "")
	if r.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	if _, ok := r.JSON()["active"]; !ok {
		t.Fatalf("introspect answer %s", r.Body)
	}
	// Revocation with aud = the issuer.
	f.Set("client_assertion", pkSign(t, key, pkClaims(c.ID, s.URL, "revoke")))
	if r := pkPost(s, server.RevokePath, f, ""); r.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	// An assertion for the introspection endpoint is not one for the
	// token endpoint.
	r = pkPost(s, server.TokenPath, pkForm(pkSign(t, key, pkClaims(c.ID, s.URL+server.IntrospectPath, "cross"))), "")
	if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("introspection aud at the token endpoint: %d %s", r.Status, r.Body)
	}
}

// TestPrivateKeyJWTBadInput: every bad client assertion is invalid_client
// (or invalid_request when two methods are mixed), changes nothing in the
// database, is audited with its cause, and leaves its jti unspent.
func TestPrivateKeyJWTBadInput(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	key := pkKey(t, "k1")
	other := pkKey(t, "k2")
	c := pkClient(s, store.Binding{JWKS: pkJWKS(t, key)})
	secretClient := s.CreateClient(nil)
	aud := s.URL + server.TokenPath
	good := func(jti string) map[string]any { return pkClaims(c.ID, aud, jti) }
	with := func(jti string, edit func(map[string]any)) string {
		m := good(jti)
		edit(m)
		return pkSign(t, key, m)
	}
	now := time.Now()
	pub, _ := json.Marshal(key.Public())
	hs := func(jti string) string {
		// HS256 keyed with the published public key: the classic forgery.
		h := b64(mustJSON(t, map[string]any{"alg": "HS256", "kid": "k1", "typ": "JWT"}))
		p := b64(mustJSON(t, good(jti)))
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + b64(m.Sum(nil))
	}
	none := b64(mustJSON(t, map[string]any{"alg": "none", "typ": "JWT"})) + "." + b64(mustJSON(t, good("none"))) + "."

	cases := []struct {
		name   string
		form   url.Values
		basic  string
		status int
		code   oauth.ErrorCode
		cause  string
		jti    string // spent by nothing: a valid assertion may use it after
	}{
		{"expired", pkForm(with("expired", func(m map[string]any) {
			m["iat"], m["exp"] = now.Add(-time.Hour).Unix(), now.Add(-59*time.Minute).Unix()
		})), "", 401, oauth.ErrInvalidClient, "expired", "expired"},
		{"not yet valid", pkForm(with("nbf", func(m map[string]any) { m["nbf"] = now.Add(time.Hour).Unix() })), "", 401, oauth.ErrInvalidClient, "not valid yet", "nbf"},
		{"issued in the future", pkForm(with("iat", func(m map[string]any) { m["iat"] = now.Add(time.Hour).Unix() })), "", 401, oauth.ErrInvalidClient, "future", "iat"},
		{"no exp", pkForm(with("noexp", func(m map[string]any) { delete(m, "exp") })), "", 401, oauth.ErrInvalidClient, "no exp", "noexp"},
		{"long-lived", pkForm(with("long", func(m map[string]any) { m["exp"] = now.Add(time.Hour).Unix() })), "", 401, oauth.ErrInvalidClient, "short-lived", "long"},
		{"no jti", pkForm(with("", func(m map[string]any) { delete(m, "jti") })), "", 401, oauth.ErrInvalidClient, "no jti", ""},
		{"wrong aud", pkForm(with("aud", func(m map[string]any) { m["aud"] = "https://other.example.com/token" })), "", 401, oauth.ErrInvalidClient, "audience", "aud"},
		{"no aud", pkForm(with("noaud", func(m map[string]any) { delete(m, "aud") })), "", 401, oauth.ErrInvalidClient, "audience", "noaud"},
		{"unregistered key", pkForm(pkSign(t, other, good("other"))), "", 401, oauth.ErrInvalidClient, "kid", "other"},
		{"unregistered key with a registered kid", pkForm(pkSign(t, jose.JSONWebKey{Key: other.Key, KeyID: "k1", Algorithm: "ES256"}, good("forged"))), "", 401, oauth.ErrInvalidClient, "signature", "forged"},
		{"alg none", pkForm(none), "", 401, oauth.ErrInvalidClient, "alg none", "none"},
		{"HS256 keyed with the public key", pkForm(hs("hs")), "", 401, oauth.ErrInvalidClient, "alg HS256", "hs"},
		{"oversized", pkForm(with("big", func(m map[string]any) { m["pad"] = strings.Repeat("x", 9000) })), "", 401, oauth.ErrInvalidClient, "larger than", "big"},
		{"iss is not sub", pkForm(with("isssub", func(m map[string]any) { m["sub"] = "someone-else" })), "", 401, oauth.ErrInvalidClient, "iss and sub differ", "isssub"},
		{"iss is another client", pkForm(with("iss", func(m map[string]any) { m["iss"], m["sub"] = secretClient.ID, secretClient.ID })), "", 401, oauth.ErrInvalidClient, "not the registered", ""},
		{"unknown client", pkForm(with("unknown", func(m map[string]any) { m["iss"], m["sub"] = "c-nobody", "c-nobody" })), "", 401, oauth.ErrInvalidClient, "unknown client", ""},
		{"client_id mismatch", pkForm(pkSign(t, key, good("cid")), "client_id", secretClient.ID), "", 401, oauth.ErrInvalidClient, "client_id does not match", "cid"},
		{"unknown assertion type", pkForm(pkSign(t, key, good("type")), "client_assertion_type", "urn:example:saml"), "", 401, oauth.ErrInvalidClient, "not supported", "type"},
		{"not a JWT", pkForm("not.a-jwt"), "", 401, oauth.ErrInvalidClient, "client_assertion", ""},
		{"assertion without type", url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_assertion": {pkSign(t, key, good("notype"))}}, "", 400, oauth.ErrInvalidRequest, "go together", "notype"},
		{"assertion and Basic", pkForm(pkSign(t, key, good("basic"))), ststest.BasicAuth(secretClient.ID, secretClient.Secret), 400, oauth.ErrInvalidRequest, "one client authentication method", "basic"},
		{"assertion and client_secret", pkForm(pkSign(t, key, good("post")), "client_id", c.ID, "client_secret", c.Secret), "", 400, oauth.ErrInvalidRequest, "one client authentication method", "post"},
		{"secret for a private_key_jwt client", url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}, ststest.BasicAuth(c.ID, c.Secret), 401, oauth.ErrInvalidClient, "not the registered", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshotDB(t, s)
			r := pkPost(s, server.TokenPath, tc.form, tc.basic)
			if r.Status != tc.status || r.Error() != string(tc.code) {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if strings.Contains(string(r.Body), tc.cause) && tc.status == 401 {
				t.Errorf("the answer tells the cause %q: %s", tc.cause, r.Body)
			}
			if after := snapshotDB(t, s); !equalState(before, after) {
				t.Errorf("the refusal changed the database")
			}
			recs := s.Audit()
			if len(recs) == 0 || recs[0].Decision != store.DecisionRefused || recs[0].Error != string(tc.code) {
				t.Fatalf("newest audit record %+v, want a refusal %s", recs[0], tc.code)
			}
			if !strings.Contains(recs[0].Detail, tc.cause) {
				t.Errorf("audit detail %q does not name the cause %q", recs[0].Detail, tc.cause)
			}
		})
	}
	// The refused assertions spent no jti: valid ones with the same jti pass.
	for _, tc := range cases {
		if tc.jti == "" {
			continue
		}
		if r := pkPost(s, server.TokenPath, pkForm(pkSign(t, key, good(tc.jti))), ""); r.Status != http.StatusOK {
			t.Errorf("jti %q after the refusal %q: %d %s", tc.jti, tc.name, r.Status, r.Body)
		}
	}
}

func equalState(a, b dbState) bool {
	for k, v := range a.counts {
		if b.counts[k] != v || a.digest[k] != b.digest[k] {
			return false
		}
	}
	return true
}

// TestPrivateKeyJWTReplay: an assertion is accepted once, on one instance
// or across two sharing the database.
func TestPrivateKeyJWTReplay(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	peer := s.StartPeer(ststest.Options{})
	key := pkKey(t, "k1")
	c := pkClient(s, store.Binding{JWKS: pkJWKS(t, key)})

	a := pkSign(t, key, pkClaims(c.ID, s.URL+server.TokenPath, "once"))
	if r := pkPost(s, server.TokenPath, pkForm(a), ""); r.Status != http.StatusOK {
		t.Fatalf("first use: %d %s", r.Status, r.Body)
	}
	r := pkPost(s, server.TokenPath, pkForm(a), "")
	if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	if recs := s.Audit(); !strings.Contains(recs[0].Detail, "already used") {
		t.Errorf("audit of the replay: %+v", recs[0])
	}

	// Across instances: aud names both, the peer refuses what s took.
	m := pkClaims(c.ID, "", "twice")
	m["aud"] = []string{s.URL, peer.URL}
	a = pkSign(t, key, m)
	if r := pkPost(s, server.TokenPath, pkForm(a), ""); r.Status != http.StatusOK {
		t.Fatalf("first use on s: %d %s", r.Status, r.Body)
	}
	if r := pkPost(peer, server.TokenPath, pkForm(a), ""); r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("replay on the peer: %d %s", r.Status, r.Body)
	}
	// The peer does take a fresh one.
	m["jti"] = "fresh"
	if r := pkPost(peer, server.TokenPath, pkForm(pkSign(t, key, m)), ""); r.Status != http.StatusOK {
		t.Fatalf("fresh assertion on the peer: %d %s", r.Status, r.Body)
	}
}

// TestPrivateKeyJWTJWKSURI: keys fetched from the client's jwks_uri
// (loopback allowed by configuration only), cached, refreshed on an
// unknown kid at most once per interval per client.
func TestPrivateKeyJWTJWKSURI(t *testing.T) {
	idp := ststest.StartIdP(t) // serves the client's keys at /keys
	s := ststest.Start(t, ststest.Options{ClientAssertions: clientauth.AssertionOptions{AllowLoopbackJWKS: true}})
	c := pkClient(s, store.Binding{JWKSURI: idp.URL + "/keys"})
	aud := s.URL + server.TokenPath
	for i := range 3 {
		a := idp.Sign(pkClaims(c.ID, aud, "u"+string(rune('0'+i))))
		if r := pkPost(s, server.TokenPath, pkForm(a), ""); r.Status != http.StatusOK {
			t.Fatalf("assertion %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := idp.Fetches.Load(); n != 1 {
		t.Fatalf("key set fetched %d times for 3 assertions, want 1 (cached)", n)
	}
	// The client rotates its key: the unknown kid fetches again, once.
	idp.Rotate()
	if r := pkPost(s, server.TokenPath, pkForm(idp.Sign(pkClaims(c.ID, aud, "rotated"))), ""); r.Status != http.StatusOK {
		t.Fatalf("after rotation: %d %s", r.Status, r.Body)
	}
	if n := idp.Fetches.Load(); n != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", n)
	}
	// Random kids do not make the server fetch at will.
	for i := range 5 {
		k := pkKey(t, "random"+string(rune('a'+i)))
		r := pkPost(s, server.TokenPath, pkForm(pkSign(t, k, pkClaims(c.ID, aud, "rk"+string(rune('a'+i))))), "")
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("random kid: %d %s", r.Status, r.Body)
		}
	}
	if n := idp.Fetches.Load(); n != 2 {
		t.Fatalf("fetches after 5 random kids = %d, want still 2", n)
	}

	// Without the setting, a loopback jwks_uri is never called.
	s2 := ststest.Start(t, ststest.Options{})
	c2 := pkClient(s2, store.Binding{JWKSURI: idp.URL + "/keys"})
	before := idp.Fetches.Load()
	r := pkPost(s2, server.TokenPath, pkForm(idp.Sign(pkClaims(c2.ID, s2.URL+server.TokenPath, "loop"))), "")
	if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("loopback jwks_uri: %d %s", r.Status, r.Body)
	}
	if idp.Fetches.Load() != before {
		t.Fatal("the server fetched a loopback jwks_uri it was not allowed to")
	}
	if recs := s2.Audit(); !strings.Contains(recs[0].Detail, "loopback") {
		t.Errorf("audit: %+v", recs[0])
	}
	// A host name that resolves to loopback is refused by the dialer.
	c3 := pkClient(s2, store.Binding{JWKSURI: "https://localhost.localdomain.invalid/keys"})
	r = pkPost(s2, server.TokenPath, pkForm(idp.Sign(pkClaims(c3.ID, s2.URL+server.TokenPath, "dns"))), "")
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("unresolvable jwks_uri: %d %s", r.Status, r.Body)
	}
}

// TestPrivateKeyJWTReplayPostgres: two instances, each with its own pool
// on one PostgreSQL database, accept an assertion once between them.
func TestPrivateKeyJWTReplayPostgres(t *testing.T) {
	schema := ststest.PostgresSchema(t)
	a := ststest.StartOn(t, ststest.OpenPostgres(t, schema), ststest.Options{})
	pb := ststest.OpenPostgres(t, schema)
	b := ststest.StartOn(t, pb, ststest.Options{})
	key := pkKey(t, "k1")
	now := time.Now()
	id := "c-pg-pkjwt"
	if err := pb.CreateClient(t.Context(), &store.Client{
		ID: id, Name: "pg", Status: store.ClientActive, AuthMethod: oauth.AuthMethodPrivateKeyJWT,
		Binding: store.Binding{JWKS: pkJWKS(t, key)}, GrantTypes: []string{oauth.GrantTypeClientCredentials},
		TokenFormat: store.TokenFormatJWT, CreatedAt: now, UpdatedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	m := pkClaims(id, "", "pg-once")
	m["aud"] = []string{a.URL, b.URL}
	as := pkSign(t, key, m)
	if r := pkPost(a, server.TokenPath, pkForm(as), ""); r.Status != http.StatusOK {
		t.Fatalf("first use on a: %d %s", r.Status, r.Body)
	}
	if r := pkPost(b, server.TokenPath, pkForm(as), ""); r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("replay on b: %d %s", r.Status, r.Body)
	}
	if r := pkPost(a, server.TokenPath, pkForm(as), ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("replay on a: %d %s", r.Status, r.Body)
	}
}

// TestSelfSignedJWKSURI: a self_signed_tls_client_auth client registered
// with a jwks_uri is matched against the keys fetched there, with the
// fetch rules of private_key_jwt (here loopback, allowed by configuration).
func TestSelfSignedJWKSURI(t *testing.T) {
	idp := ststest.StartIdP(t) // serves the client's public key at /keys
	s, _ := mtlsServer(t, ststest.Options{ClientAssertions: clientauth.AssertionOptions{AllowLoopbackJWKS: true}})
	self := ststest.SelfSigned(t, ststest.CertOptions{Key: idp.Key().Key.(*ecdsa.PrivateKey)})
	other := ststest.SelfSigned(t, ststest.CertOptions{})
	c := s.CreateKeyClient(func(c *store.Client) {
		c.AuthMethod = oauth.AuthMethodSelfSignedTLSClientAuth
		c.Binding = store.Binding{JWKSURI: idp.URL + "/keys"}
	})
	form := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}}
	if r := s.PostCert(server.TokenPath, self, form); r.Status != http.StatusOK {
		t.Fatalf("certificate with the key at jwks_uri: %d %s", r.Status, r.Body)
	}
	if r := s.PostCert(server.TokenPath, other, form); r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("another certificate: %d %s", r.Status, r.Body)
	}
	if n := idp.Fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times, want 1 (cached)", n)
	}
}

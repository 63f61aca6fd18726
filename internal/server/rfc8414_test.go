package server_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// metadata fetches the document at path and decodes it.
func metadata(t *testing.T, s *ststest.STS, path string) (*ststest.Response, map[string]any) {
	t.Helper()
	r := s.Do(mustGet(t, s.URL+path))
	if r.Status != http.StatusOK {
		t.Fatalf("%s: %d %s", path, r.Status, r.Body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s: %v: %s", path, err, r.Body)
	}
	return r, m
}

func stringList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// RFC 8414 §3: the metadata is at /.well-known/oauth-authorization-server
// (and, for OpenID-only clients, /.well-known/openid-configuration), as
// JSON whose issuer is the server's issuer identifier (§3.3).
func TestRFC8414_3_WellKnownMetadata(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	r1, m := metadata(t, s, discovery.MetadataPath)
	r2, m2 := metadata(t, s, discovery.OpenIDConfigPath)
	if string(r1.Body) != string(r2.Body) || !reflect.DeepEqual(m, m2) {
		t.Errorf("the two documents differ:\n%s\n%s", r1.Body, r2.Body)
	}
	for _, r := range []*ststest.Response{r1, r2} {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	want := map[string]string{
		"issuer":                 s.URL,
		"token_endpoint":         s.URL + server.TokenPath,
		"jwks_uri":               s.URL + discovery.JWKSPath,
		"introspection_endpoint": s.URL + server.IntrospectPath,
		"revocation_endpoint":    s.URL + server.RevokePath,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %s", k, m[k], v)
		}
	}
	grants := stringList(m["grant_types_supported"])
	for _, g := range []string{oauth.GrantTypeTokenExchange, oauth.GrantTypeClientCredentials, oauth.GrantTypeRefreshToken} {
		if !slices.Contains(grants, g) {
			t.Errorf("grant_types_supported %v lacks %s", grants, g)
		}
	}
	for _, k := range []string{"token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"} {
		methods := stringList(m[k])
		if !slices.Contains(methods, oauth.AuthMethodClientSecretBasic) || !slices.Contains(methods, oauth.AuthMethodClientSecretPost) {
			t.Errorf("%s = %v", k, methods)
		}
	}
	if _, ok := m["response_types_supported"].([]any); !ok {
		t.Errorf("response_types_supported (REQUIRED) missing: %v", m["response_types_supported"])
	}
	// Every advertised endpoint answers (POST-only ones with 405 to GET,
	// not 404).
	for _, k := range []string{"token_endpoint", "introspection_endpoint", "revocation_endpoint", "jwks_uri"} {
		u, _ := m[k].(string)
		if r := s.Do(mustGet(t, u)); r.Status == http.StatusNotFound {
			t.Errorf("%s %s: 404", k, u)
		}
	}
	// The advertised grant types and auth methods really work.
	c := s.CreateClient(nil)
	wantOK(t, postToken(t, s, ccBody, ststest.BasicAuth(c.ID, c.Secret)))
}

// RFC 8414 §2.1: signed_metadata is a JWT, verifiable with the server's
// keys, whose iss is the issuer and whose claims are the metadata values.
func TestRFC8414_2_1_SignedMetadata(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	_, m := metadata(t, s, discovery.MetadataPath)
	signed, _ := m["signed_metadata"].(string)
	if strings.Count(signed, ".") != 2 {
		t.Fatalf("signed_metadata %q is not a compact JWS", signed)
	}
	h, claims := verifyWithJWKS(t, s, signed)
	if h.KeyID != s.Keys.Snapshot().Current.ID {
		t.Errorf("kid %q", h.KeyID)
	}
	if claims["iss"] != s.URL {
		t.Errorf("iss %v, want %s", claims["iss"], s.URL)
	}
	for k, v := range m {
		if k == "signed_metadata" {
			continue
		}
		if !reflect.DeepEqual(claims[k], v) {
			t.Errorf("claim %s = %v, document says %v", k, claims[k], v)
		}
	}
	for k := range claims {
		if _, ok := m[k]; !ok && k != "iss" && k != "iat" {
			t.Errorf("claim %s is not in the document", k)
		}
	}
	if _, ok := claims["signed_metadata"]; ok {
		t.Error("signed_metadata signs itself")
	}
}

// RFC 8414 §2 jwks_uri (RFC 7517 §5): the JWK set holds the current key,
// public parts only, and may be cached for a bounded time.
func TestRFC8414_2_JWKS(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	r := s.Do(mustGet(t, s.URL+discovery.JWKSPath))
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	cc := r.Header.Get("Cache-Control")
	_, after, ok := strings.Cut(cc, "max-age=")
	age, err := strconv.Atoi(strings.SplitN(after, ",", 2)[0])
	if !ok || err != nil || age <= 0 || age > 3600 {
		t.Errorf("Cache-Control %q: want a bounded max-age", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &set); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, k := range set.Keys {
		found = found || k["kid"] == s.Keys.Snapshot().Current.ID
		if _, priv := k["d"]; priv {
			t.Errorf("private key material published: kid %v", k["kid"])
		}
	}
	if !found {
		t.Errorf("current key missing from %s", r.Body)
	}
	// Revalidation by ETag.
	if etag := r.Header.Get("ETag"); etag != "" {
		req := mustGet(t, s.URL+discovery.JWKSPath)
		req.Header.Set("If-None-Match", etag)
		if r := s.Do(req); r.Status != http.StatusNotModified {
			t.Errorf("If-None-Match: %d", r.Status)
		}
	}
}

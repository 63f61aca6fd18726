package register_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// wantError requires an OAuth error answer with status and code, as JSON
// that is never cached.
func wantError(t *testing.T, r *ststest.Response, status int, code oauth.ErrorCode) {
	t.Helper()
	if r.Status != status || r.Error() != string(code) {
		t.Fatalf("answer %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", r.Header.Get("Cache-Control"))
	}
	if d, _ := r.JSON()["error_description"].(string); d == "" {
		t.Errorf("no error_description in %s", r.Body)
	}
}

// wantInvalidToken requires RFC 6750 §3.1's answer to a bad bearer token.
func wantInvalidToken(t *testing.T, r *ststest.Response) {
	t.Helper()
	wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidToken)
	ch := r.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate %q, want a Bearer challenge with error=\"invalid_token\"", ch)
	}
}

// publisher is a software-statement publisher with its keys.
type publisher struct {
	iss  string
	keys map[string]crypto.Signer // kid → key
	set  *jose.JSONWebKeySet
}

func newPublisher(t *testing.T, iss string) *publisher {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{iss: iss, keys: map[string]crypto.Signer{"ec-1": ec, "ed-1": ed}, set: &jose.JSONWebKeySet{}}
	for kid, k := range p.keys {
		p.set.Keys = append(p.set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Use: "sig"})
	}
	return p
}

// statement signs claims (iss and iat added unless present) with the
// publisher's key kid.
func (p *publisher) statement(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": p.iss, "iat": time.Now().Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	alg := jose.ES256
	if strings.HasPrefix(kid, "ed") {
		alg = jose.EdDSA
	}
	return signJWS(t, alg, jose.JSONWebKey{Key: p.keys[kid], KeyID: kid}, c)
}

func signJWS(t *testing.T, alg jose.SignatureAlgorithm, key any, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tokenFor tries client_credentials for c and returns the status.
func tokenFor(s *ststest.STS, c *ststest.Client) *ststest.Response {
	return s.PostForm("/token/oauth2", c, map[string][]string{"grant_type": {oauth.GrantTypeClientCredentials}})
}

// postAuth tries client_credentials with client_secret_post; extra are
// more parameters, in pairs.
func postAuth(s *ststest.STS, c *ststest.Client, extra ...string) *ststest.Response {
	form := map[string][]string{
		"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {c.ID}, "client_secret": {c.Secret},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		form[extra[i]] = append(form[extra[i]], extra[i+1])
	}
	return s.PostForm("/token/oauth2", nil, form)
}

func strList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// boundIAT is an initial access token of the account that names the
// client of md (its software_id and hardware_address, else its
// client_name), as an account issues one to re-register a device that
// lost its credentials; extra claims are added.
func boundIAT(s *ststest.STS, accountID string, md map[string]any, extra ...any) string {
	s.T.Helper()
	claims := map[string]any{}
	if sw, ok := md["software_id"]; ok {
		claims["software_id"] = sw
		if hw, ok := md["hardware_address"]; ok {
			claims["hardware_address"] = hw
		}
	} else if name, ok := md["client_name"]; ok {
		claims["client_name"] = name
	}
	for i := 0; i+1 < len(extra); i += 2 {
		claims[extra[i].(string)] = extra[i+1]
	}
	return s.IAT(accountID, claims)
}

// reregister registers md with an IAT bound to its identity and fails the
// test unless the answer is 201.
func reregister(s *ststest.STS, accountID string, md map[string]any) *ststest.Registration {
	s.T.Helper()
	r := s.Register(boundIAT(s, accountID, md), md)
	if r.Status != http.StatusCreated {
		s.T.Fatalf("re-register: %d %s", r.Status, r.Body)
	}
	return r.Registration()
}

// withToken is md with the registration access token of reg, the other
// proof of continuity a re-registration may show.
func withToken(md map[string]any, reg *ststest.Registration) map[string]any {
	out := map[string]any{"registration_access_token": reg.RegistrationAccessToken}
	for k, v := range md {
		out[k] = v
	}
	return out
}

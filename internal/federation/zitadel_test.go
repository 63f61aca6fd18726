package federation

// A real, independently written OpenID provider: the op package of
// github.com/zitadel/oidc with its example storage, run in the test over
// real HTTP on loopback. Tokens are obtained through its own endpoints
// (the authorization code flow for an id_token and a JWT access token,
// the client credentials grant for another JWT access token), and
// verified through its own discovery document and JWKS.
//
// Two small additions to the example storage, by embedding (the library
// is not modified): the signing key can be rotated (the example has one
// fixed key), and clients get JWT access tokens (the example's clients
// all use opaque ones).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// zKey is a signing key of the provider (op.SigningKey and op.Key).
type zKey struct {
	id   string
	alg  jose.SignatureAlgorithm
	priv any
	pub  any
}

func (k *zKey) SignatureAlgorithm() jose.SignatureAlgorithm { return k.alg }
func (k *zKey) Algorithm() jose.SignatureAlgorithm          { return k.alg }
func (k *zKey) ID() string                                  { return k.id }
func (k *zKey) Use() string                                 { return "sig" }

// signingKey is the private half, for op.SigningKey.
type signingKey struct{ *zKey }

func (k signingKey) Key() any { return k.priv }

// publicKey is the public half, for op.Key.
type publicKey struct{ *zKey }

func (k publicKey) Key() any { return k.pub }

// rotatingStorage is the example storage with rotatable keys and JWT
// access tokens.
type rotatingStorage struct {
	*storage.Storage
	mu      sync.Mutex
	keys    []*zKey
	current *zKey
}

func (s *rotatingStorage) rotate(t *testing.T, alg jose.SignatureAlgorithm, id string) {
	t.Helper()
	k := &zKey{id: id, alg: alg}
	switch alg {
	case jose.RS256:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		k.priv, k.pub = priv, &priv.PublicKey
	case jose.ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.priv, k.pub = priv, &priv.PublicKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	s.current = k
}

func (s *rotatingStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return signingKey{s.current}, nil
}

func (s *rotatingStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, nil
}

func (s *rotatingStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []op.Key
	for _, k := range s.keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

// jwtClient makes a client's access tokens JWTs (RFC 9068 shaped).
type jwtClient struct{ op.Client }

func (jwtClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

func (s *rotatingStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

func (s *rotatingStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return jwtClient{c}, nil
}

// zitadelOP runs the provider on loopback.
type zitadelOP struct {
	issuer  string
	storage *rotatingStorage
	client  *http.Client // does not follow redirects
}

const (
	zClientID     = "web"
	zClientSecret = "web-secret"
	zRedirect     = "http://127.0.0.1:1/cb"
)

func startZitadelOP(t *testing.T) *zitadelOP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	clients := map[string]*storage.Client{zClientID: storage.WebClient(zClientID, zClientSecret, zRedirect)}
	st := &rotatingStorage{Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), clients)}
	st.rotate(t, jose.RS256, "rsa-1")
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{CryptoKey: key, CodeMethodS256: true}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = provider
	srv.Start()
	t.Cleanup(srv.Close)
	return &zitadelOP{
		issuer:  issuer,
		storage: st,
		client: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
}

// redirect GETs u and returns the Location it redirects to.
func (z *zitadelOP) redirect(t *testing.T, u string) *url.URL {
	t.Helper()
	resp, err := z.client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 3 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: %s %s", u, resp.Status, b)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func (z *zitadelOP) token(t *testing.T, form url.Values, id, secret string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, z.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := z.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint: %s %v", resp.Status, out)
	}
	return out
}

// codeFlow runs the authorization code flow for the example user "id1"
// and returns the id_token and the (JWT) access token. The login UI is
// skipped: the storage's own CheckUsernamePassword does what the
// example's login page does.
func (z *zitadelOP) codeFlow(t *testing.T) (idToken, accessToken string) {
	t.Helper()
	q := url.Values{
		"client_id": {zClientID}, "redirect_uri": {zRedirect}, "response_type": {"code"},
		"scope": {"openid profile"}, "state": {"s1"}, "nonce": {"n1"},
	}
	login := z.redirect(t, z.issuer+"/authorize?"+q.Encode())
	id := login.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("login redirect %s has no request id", login)
	}
	if err := z.storage.CheckUsernamePassword("test-user@127.0.0.1", "verysecure", id); err != nil {
		t.Fatal(err)
	}
	back := z.redirect(t, z.issuer+"/authorize/callback?id="+url.QueryEscape(id))
	code := back.Query().Get("code")
	if code == "" || back.Query().Get("state") != "s1" {
		t.Fatalf("callback redirect %s", back)
	}
	out := z.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {zRedirect}}, zClientID, zClientSecret)
	idToken, _ = out["id_token"].(string)
	accessToken, _ = out["access_token"].(string)
	if idToken == "" || strings.Count(accessToken, ".") != 2 {
		t.Fatalf("token response %v", out)
	}
	return idToken, accessToken
}

func TestZitadelOP(t *testing.T) {
	z := startZitadelOP(t)
	f := NewFetcher(Options{})
	ti := &store.TrustedIssuer{
		Name:       "zitadel",
		Issuer:     z.issuer,
		Enabled:    true,
		TokenTypes: []string{oauth.TokenTypeIDToken, oauth.TokenTypeAccessToken},
		Audiences:  []string{zClientID, "sid1"},
		Leeway:     5 * time.Second,
		UpdatedAt:  time.Now(),
	}
	ctx := context.Background()

	idToken, accessToken := z.codeFlow(t)
	if iss, ok := PeekIssuer(idToken); !ok || iss != z.issuer {
		t.Fatalf("PeekIssuer = %q, %v", iss, ok)
	}
	m, err := f.Discover(ctx, ti)
	if err != nil {
		t.Fatal(err)
	}
	if m.JWKSURI != z.issuer+"/keys" || m.IntrospectionEndpoint != z.issuer+"/oauth/introspect" {
		t.Fatalf("metadata %+v", m)
	}
	v, err := f.VerifyJWT(ctx, ti, idToken, Check{TokenType: oauth.TokenTypeIDToken})
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	if v.Subject != "id1" || v.KeyID != "rsa-1" || v.Algorithm != "RS256" || v.KeySource != z.issuer+"/keys" || v.Claims["nonce"] != "n1" {
		t.Fatalf("id_token verified as %+v", v)
	}
	v, err = f.VerifyJWT(ctx, ti, accessToken, Check{TokenType: oauth.TokenTypeAccessToken})
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	if v.Subject != "id1" || v.Claims["client_id"] != zClientID {
		t.Fatalf("access token verified as %+v", v)
	}
	// The id_token is not accepted for another audience.
	_, err = f.VerifyJWT(ctx, ti, idToken, Check{TokenType: oauth.TokenTypeIDToken, Audiences: []string{"https://sts.example"}})
	wantReason(t, err, "audience must include one of [https://sts.example]", false)

	// A JWT access token of the client credentials grant.
	out := z.token(t, url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}, "sid1", "verysecret")
	cc, _ := out["access_token"].(string)
	v, err = f.VerifyJWT(ctx, ti, cc, Check{TokenType: oauth.TokenTypeAccessToken})
	if err != nil {
		t.Fatalf("client credentials token: %v", err)
	}
	if v.Subject != "sid1" {
		t.Fatalf("client credentials token verified as %+v", v)
	}
	fetches := f.Fetches()
	if fetches != 2 {
		t.Fatalf("%d fetches, want 2 (discovery, keys)", fetches)
	}

	// Key rotation at the upstream: a new ES256 key signs; the first
	// token naming it refreshes the keys once.
	z.storage.rotate(t, jose.ES256, "ec-2")
	idToken2, _ := z.codeFlow(t)
	v, err = f.VerifyJWT(ctx, ti, idToken2, Check{TokenType: oauth.TokenTypeIDToken})
	if err != nil {
		t.Fatalf("id_token after rotation: %v", err)
	}
	if v.KeyID != "ec-2" || v.Algorithm != "ES256" {
		t.Fatalf("after rotation verified with %s %s", v.KeyID, v.Algorithm)
	}
	if f.Fetches() != fetches+1 {
		t.Fatalf("rotation caused %d fetches, want 1", f.Fetches()-fetches)
	}
	// The token of the old key still verifies (still published), from cache.
	if _, err := f.VerifyJWT(ctx, ti, idToken, Check{TokenType: oauth.TokenTypeIDToken}); err != nil {
		t.Fatal(err)
	}
	if f.Fetches() != fetches+1 {
		t.Fatal("a cached key caused a fetch")
	}
}

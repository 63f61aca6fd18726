package server_test

// End to end with a real, independently written OpenID provider: the op
// package of github.com/zitadel/oidc with its example storage, run over
// real HTTP on loopback. Its tokens are obtained through its own
// endpoints (the authorization code flow) and exchanged at the server
// over HTTP; the server finds zitadel's keys by OpenID discovery alone
// (no JWKS URI nor key set configured), applies a CEL condition on the
// id_token's claims, and follows zitadel's key rotation.
//
// The provider harness is adapted from internal/federation/zitadel_test.go
// (test code of another package): the example storage gets a rotatable
// signing key, JWT access tokens, and its client asserts the userinfo
// claims (email, email_verified) in the id_token, as deployments that
// federate on e-mail configure it. The library itself is not modified.

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
	"github.com/keybridge/sts/internal/ststest"
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

type zSigningKey struct{ *zKey }

func (k zSigningKey) Key() any { return k.priv }

type zPublicKey struct{ *zKey }

func (k zPublicKey) Key() any { return k.pub }

// zStorage is the example storage with rotatable keys, JWT access tokens
// and userinfo claims in id_tokens.
type zStorage struct {
	*storage.Storage
	mu      sync.Mutex
	keys    []*zKey
	current *zKey
}

// rotate adds a key that signs from now on; the older keys stay published
// until retire.
func (s *zStorage) rotate(t *testing.T, alg jose.SignatureAlgorithm, id string) {
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
	default:
		t.Fatalf("algorithm %s", alg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, k)
	s.current = k
}

// retire stops publishing every key but the current one.
func (s *zStorage) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = []*zKey{s.current}
}

func (s *zStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return zSigningKey{s.current}, nil
}

func (s *zStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256}, nil
}

func (s *zStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []op.Key
	for _, k := range s.keys {
		out = append(out, zPublicKey{k})
	}
	return out, nil
}

// zClient gives JWT access tokens (RFC 9068 shaped) and asserts the
// userinfo claims of the granted scopes in the id_token.
type zClient struct{ op.Client }

func (zClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (zClient) IDTokenUserinfoClaimsAssertion() bool { return true }

func (s *zStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return zClient{c}, nil
}

func (s *zStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.Storage.ClientCredentials(ctx, id, secret)
	if err != nil {
		return nil, err
	}
	return zClient{c}, nil
}

// zitadel is the provider running on loopback.
type zitadel struct {
	issuer  string
	storage *zStorage
	http    *http.Client // follows no redirect
	// requests counts the requests for discovery and keys.
	mu       sync.Mutex
	requests map[string]int
}

const (
	zClientID     = "web"
	zClientSecret = "web-secret"
	zRedirect     = "http://127.0.0.1:1/cb"
)

func startZitadel(t *testing.T) *zitadel {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	clients := map[string]*storage.Client{zClientID: storage.WebClient(zClientID, zClientSecret, zRedirect)}
	st := &zStorage{Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer), clients)}
	st.rotate(t, jose.RS256, "rsa-1")
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		t.Fatal(err)
	}
	provider, err := op.NewProvider(&op.Config{CryptoKey: key, CodeMethodS256: true}, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	z := &zitadel{
		issuer:   issuer,
		storage:  st,
		requests: map[string]int{},
		http: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		z.mu.Lock()
		z.requests[r.URL.Path]++
		z.mu.Unlock()
		provider.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	return z
}

// fetches is how many times the discovery document and the keys were
// requested.
func (z *zitadel) fetches() (discovery, keys int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.requests["/.well-known/openid-configuration"], z.requests["/keys"]
}

func (z *zitadel) redirect(t *testing.T, u string) *url.URL {
	t.Helper()
	resp, err := z.http.Get(u)
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

// codeFlow signs user in through the authorization code flow and returns
// the id_token and the JWT access token. The login page is skipped: the
// storage's CheckUsernamePassword is what the example's login page calls.
func (z *zitadel) codeFlow(t *testing.T, user string) (idToken, accessToken string) {
	t.Helper()
	q := url.Values{
		"client_id": {zClientID}, "redirect_uri": {zRedirect}, "response_type": {"code"},
		"scope": {"openid email profile"}, "state": {"s1"}, "nonce": {"n1"},
	}
	login := z.redirect(t, z.issuer+"/authorize?"+q.Encode())
	id := login.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("login redirect %s has no request id", login)
	}
	if err := z.storage.CheckUsernamePassword(user, "verysecure", id); err != nil {
		t.Fatal(err)
	}
	back := z.redirect(t, z.issuer+"/authorize/callback?id="+url.QueryEscape(id))
	code := back.Query().Get("code")
	if code == "" || back.Query().Get("state") != "s1" {
		t.Fatalf("callback redirect %s", back)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {zRedirect}}
	req, err := http.NewRequest(http.MethodPost, z.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(zClientID, zClientSecret)
	resp, err := z.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	idToken, _ = out["id_token"].(string)
	accessToken, _ = out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || idToken == "" || strings.Count(accessToken, ".") != 2 {
		t.Fatalf("token endpoint: %s %v", resp.Status, out)
	}
	return idToken, accessToken
}

// kid is the key id in a JWT's header.
func kid(t *testing.T, jwt string) string {
	t.Helper()
	obj, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return obj.Signatures[0].Header.KeyID
}

func TestFederationZitadel(t *testing.T) {
	// Refreshes on an unknown kid are rate-limited per issuer; a short
	// interval lets the test rotate twice.
	opts := fedOptions
	opts.Federation.UnknownKidInterval = 300 * time.Millisecond
	s := ststest.Start(t, opts)
	z := startZitadel(t)
	c := fedClient(s)
	// The id_token must say the e-mail address was verified; zitadel's
	// JWT access tokens carry no e-mail claims, so for them the condition
	// asks for the client they were issued to instead.
	const condition = `subject.sub == "id1" && ("email_verified" in subject ` +
		`? subject.email_verified == true && subject.email == "test-user@zitadel.ch" : subject.client_id == "web")`
	s.Trust(&ststest.IdP{URL: z.issuer}, "zitadel", zClientID, []string{c.ID}, func(ti *store.TrustedIssuer) {
		ti.Algorithms = []string{"RS256", "ES256"}
		ti.Policy = store.Policy{Condition: condition, Claims: map[string]string{"email": `subject.?email.orValue("")`}}
		// By discovery only.
		ti.JWKSURI, ti.JWKS = "", nil
	})
	exchange := func(tok, typ string) *ststest.Response {
		t.Helper()
		return s.Exchange(c, tok, typ, url.Values{"audience": {backend}})
	}
	granted := func(what string, r *ststest.Response) map[string]any {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", what, r.Status, r.Body)
		}
		got := claimsOf(t, r.Token().AccessToken)
		if got["sub"] != "zitadel:id1" || got["iss"] != s.URL || got["aud"] != backend {
			t.Fatalf("%s: issued %v", what, got)
		}
		subID, _ := got["sub_id"].(map[string]any)
		if subID["format"] != "iss_sub" || subID["iss"] != z.issuer || subID["sub"] != "id1" {
			t.Fatalf("%s: sub_id %v must name zitadel's issuer", what, got["sub_id"])
		}
		return got
	}

	idToken, accessToken := z.codeFlow(t, "test-user@127.0.0.1")
	if k := kid(t, idToken); k != "rsa-1" {
		t.Fatalf("zitadel signed with %q", k)
	}
	if got := granted("id_token", exchange(idToken, oauth.TokenTypeIDToken)); got["email"] != "test-user@zitadel.ch" {
		t.Fatalf("claim rule on the id_token: %v", got["email"])
	}
	granted("access token", exchange(accessToken, oauth.TokenTypeAccessToken))
	d, k := z.fetches()
	if d != 1 || k != 1 {
		t.Fatalf("zitadel served discovery %d and keys %d times; want once each", d, k)
	}

	// Another user of zitadel, e-mail verified too: the condition names id1.
	other, otherAccess := z.codeFlow(t, "test-user2")
	refusedWith(t, s, exchange(other, oauth.TokenTypeIDToken), "invalid_request", `the condition of issuer "zitadel" is not met`)
	refusedWith(t, s, exchange(otherAccess, oauth.TokenTypeAccessToken), "invalid_request", `the condition of issuer "zitadel" is not met`)
	// The condition is on the id_token's claims: an unverified e-mail
	// address is refused (the example user's is verified; the condition
	// is changed to ask for another address to see the refusal).
	s.UpdateTrust("zitadel", func(ti *store.TrustedIssuer) {
		ti.Policy.Condition = strings.Replace(condition, "test-user@zitadel.ch", "someone@else.example", 1)
	})
	refusedWith(t, s, exchange(idToken, oauth.TokenTypeIDToken), "invalid_request", `the condition of issuer "zitadel" is not met`)
	s.UpdateTrust("zitadel", func(ti *store.TrustedIssuer) { ti.Policy.Condition = condition })
	granted("id_token with the condition restored", exchange(idToken, oauth.TokenTypeIDToken))
	_, k = z.fetches()

	// zitadel rotates: a new ES256 key signs, the RSA key stays published.
	z.storage.rotate(t, jose.ES256, "ec-2")
	idToken2, accessToken2 := z.codeFlow(t, "test-user@127.0.0.1")
	if k := kid(t, idToken2); k != "ec-2" {
		t.Fatalf("after rotation zitadel signed with %q", k)
	}
	granted("id_token of the new key", exchange(idToken2, oauth.TokenTypeIDToken))
	granted("access token of the new key", exchange(accessToken2, oauth.TokenTypeAccessToken))
	if _, k2 := z.fetches(); k2 != k+1 {
		t.Fatalf("the rotation caused %d key fetches; want 1", k2-k)
	}
	// The old key's tokens, still published, still pass (from the cache).
	granted("id_token of the old key", exchange(idToken, oauth.TokenTypeIDToken))
	granted("access token of the old key", exchange(accessToken, oauth.TokenTypeAccessToken))
	if _, k3 := z.fetches(); k3 != k+1 {
		t.Fatal("a cached key caused a fetch")
	}
	// Once zitadel retires the old keys, a token signed with a third key
	// is accepted after one more fetch (past the rate limit on refreshes),
	// and the old keys are gone with it.
	z.storage.rotate(t, jose.RS256, "rsa-3")
	z.storage.retire()
	idToken3, _ := z.codeFlow(t, "test-user@127.0.0.1")
	time.Sleep(opts.Federation.UnknownKidInterval)
	granted("id_token of the third key", exchange(idToken3, oauth.TokenTypeIDToken))
	refusedWith(t, s, exchange(idToken, oauth.TokenTypeIDToken), "invalid_request", z.issuer)
}

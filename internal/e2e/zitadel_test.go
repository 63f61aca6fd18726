package e2e_test

// The federation story against a real `sts serve` process with a real,
// independently written OpenID provider: zitadel/oidc's op package with
// its example storage, on loopback in the test process. The operator adds
// it with `sts issuer add` by discovery alone (the CLI checks discovery
// finds its keys); the running server exchanges zitadel's id_tokens and
// JWT access tokens under a CEL condition, and follows its key rotation.
// The harness is the one of internal/server/zitadel_test.go (test code of
// another package, so copied).

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

	"github.com/keybridge/sts/internal/server"
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
func (s *zStorage) rotate(t testing.TB, alg jose.SignatureAlgorithm, id string) {
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

func startZitadel(t testing.TB) *zitadel {
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

func (z *zitadel) redirect(t testing.TB, u string) *url.URL {
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
func (z *zitadel) codeFlow(t testing.TB, user string) (idToken, accessToken string) {
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

func TestFederationZitadelProcess(t *testing.T) {
	z := startZitadel(t)
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	cl := fedClient(c, "web-backend")
	const condition = `subject.sub == "id1" && ("email_verified" in subject ` +
		`? subject.email_verified == true && subject.email == "test-user@zitadel.ch" : subject.client_id == "web")`
	c.CLI("issuer", "add", z.issuer, "--name", "zitadel", "--client", cl.ID, "--audience", zClientID,
		"--token-type", "id_token", "--token-type", "access_token", "--algorithm", "RS256", "--algorithm", "ES256",
		"--condition", condition)
	exchange := func(tok, typ string) reply {
		return n.post(t.Context(), server.TokenPath, cl, url.Values{
			"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {tok},
			"subject_token_type": {typ}, "audience": {fedBackend},
		})
	}
	wantGranted := func(what string, r reply) {
		t.Helper()
		_, claims, err := jwtParts(accessToken(t, r))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		subID, _ := claims["sub_id"].(map[string]any)
		if claims["sub"] != "zitadel:id1" || subID["iss"] != z.issuer || subID["sub"] != "id1" {
			t.Fatalf("%s: issued %v", what, claims)
		}
	}

	idToken, access := z.codeFlow(t, "test-user@127.0.0.1")
	var r reply
	for deadline := time.Now().Add(3 * server.IssuerSyncInterval); ; time.Sleep(100 * time.Millisecond) {
		if r = exchange(idToken, oauth.TokenTypeIDToken); granted(r) || time.Now().After(deadline) {
			break
		}
	}
	wantGranted("id_token", r)
	wantGranted("access token", exchange(access, oauth.TokenTypeAccessToken))

	other, _ := z.codeFlow(t, "test-user2")
	wantRefused(t, "another user's id_token", exchange(other, oauth.TokenTypeIDToken), `the condition of issuer "zitadel" is not met`)
	auditWith(t, c, cl.ID, `the condition of issuer "zitadel" is not met`)

	_, keys := z.fetches()
	z.storage.rotate(t, jose.ES256, "ec-2")
	idToken2, access2 := z.codeFlow(t, "test-user@127.0.0.1")
	wantGranted("id_token of the new key", exchange(idToken2, oauth.TokenTypeIDToken))
	wantGranted("access token of the new key", exchange(access2, oauth.TokenTypeAccessToken))
	wantGranted("id_token of the old key", exchange(idToken, oauth.TokenTypeIDToken))
	if _, k := z.fetches(); k != keys+1 {
		t.Errorf("zitadel's rotation made the server fetch its keys %d times; want 1", k-keys)
	}
}

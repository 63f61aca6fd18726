package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/clientcert"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// dpopKey is a client's DPoP key.
type dpopKey struct {
	k   *ecdsa.PrivateKey
	jkt string
}

func newDPoPKey(t testing.TB) *dpopKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &dpopKey{k: k, jkt: jkt}
}

// proof is a proof for a POST to the token endpoint of issuer.
func (k *dpopKey) proof(t testing.TB, issuer string, o dpop.ProofOptions) string {
	t.Helper()
	p, err := dpop.NewProof(k.k, "", http.MethodPost, issuer+server.TokenPath, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rawProof signs any header members and claims with go-jose, for the
// proofs NewProof refuses to make.
func rawProof(t *testing.T, key any, alg jose.SignatureAlgorithm, header map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{ExtraHeaders: header})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(mustJSON(t, claims))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tokenRequest is a token request of c (Basic credentials) to s, with the
// DPoP headers given.
func tokenRequest(t *testing.T, s *ststest.STS, c *ststest.Client, form url.Values, proofs ...string) *http.Request {
	t.Helper()
	req := newRequest(t, http.MethodPost, s.URL+server.TokenPath, form.Encode(), "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", ststest.BasicAuth(c.ID, c.Secret))
	for _, p := range proofs {
		req.Header.Add(dpop.Header, p)
	}
	return req
}

func postDPoP(t *testing.T, s *ststest.STS, c *ststest.Client, form url.Values, proofs ...string) *ststest.Response {
	t.Helper()
	return s.Do(tokenRequest(t, s, c, form, proofs...))
}

var ccForm = url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}

func exchangeForm(subject string, extra ...string) url.Values {
	f := url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

// cnfOf is the cnf claim of a JWT access token.
func cnfOf(t *testing.T, jwt string) oauth.Confirmation {
	t.Helper()
	_, claims, err := token.ParseUnverified(jwt)
	if err != nil {
		t.Fatal(err)
	}
	var c oauth.Confirmation
	if raw, ok := claims["cnf"]; ok {
		if err := json.Unmarshal(mustJSON(t, raw), &c); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// introspectedCnf is the cnf member of an introspection answer.
func introspectedCnf(t *testing.T, m map[string]any) oauth.Confirmation {
	t.Helper()
	var c oauth.Confirmation
	if raw, ok := m["cnf"]; ok {
		if err := json.Unmarshal(mustJSON(t, raw), &c); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestRFC9449_5_BoundTokens: a request with a valid proof gets token_type
// DPoP and tokens bound to the proof's key (cnf.jkt, the RFC 7638
// thumbprint), JWT and opaque alike, and introspection says so; the
// refresh token is bound too, and refreshing needs the same key.
func TestRFC9449_5_BoundTokens(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	key := newDPoPKey(t)
	for _, format := range []string{store.TokenFormatJWT, store.TokenFormatOpaque} {
		t.Run(format, func(t *testing.T) {
			c := s.CreateClient(func(c *store.Client) {
				c.TokenFormat = format
				c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
			})
			// client_credentials issues no refresh token; an exchange of
			// the client's own token asking for one does.
			tr := wantOK(t, postDPoP(t, s, c, ccForm, key.proof(t, s.URL, dpop.ProofOptions{})))
			if tr.TokenType != oauth.TokenTypeDPoP {
				t.Fatalf("token_type %q, want DPoP", tr.TokenType)
			}
			if format == store.TokenFormatJWT {
				if got := cnfOf(t, tr.AccessToken); got.JKT != key.jkt || got.X5tS256 != "" {
					t.Fatalf("cnf %+v, want jkt %s", got, key.jkt)
				}
			}
			m := introspect(t, s, c, tr.AccessToken)
			if got := introspectedCnf(t, m); m["active"] != true || got.JKT != key.jkt || m["token_type"] != oauth.TokenTypeDPoP {
				t.Fatalf("introspection %v", m)
			}
			// The exchange issues a refresh token bound to the key too.
			ex := wantOK(t, postDPoP(t, s, c, exchangeForm(tr.AccessToken, "requested_token_type", oauth.TokenTypeRefreshToken),
				key.proof(t, s.URL, dpop.ProofOptions{})))
			if got := introspectedCnf(t, introspect(t, s, c, ex.AccessToken)); got.JKT != key.jkt {
				t.Fatalf("refresh token cnf %+v", got)
			}
			// Refreshing with the same key issues bound tokens again.
			rf := wantOK(t, postDPoP(t, s, c, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {ex.AccessToken}},
				key.proof(t, s.URL, dpop.ProofOptions{})))
			if rf.TokenType != oauth.TokenTypeDPoP || rf.RefreshToken == "" {
				t.Fatalf("refresh: %+v", rf)
			}
			if got := introspectedCnf(t, introspect(t, s, c, rf.RefreshToken)); got.JKT != key.jkt {
				t.Fatalf("rotated refresh token cnf %+v", got)
			}
		})
	}
	// A bearer client without a proof still gets bearer tokens.
	c := s.CreateClient(nil)
	if tr := wantOK(t, postDPoP(t, s, c, ccForm)); tr.TokenType != oauth.TokenTypeBearer || cnfOf(t, tr.AccessToken) != (oauth.Confirmation{}) {
		t.Fatalf("bearer: %+v", tr)
	}
}

// refusalAudited finds the audit record of the request with X-Request-Id
// id (or the coalesced record of identical refusals) and checks it.
func refusalAudited(t *testing.T, s *ststest.STS, id string, code oauth.ErrorCode) {
	t.Helper()
	recs := s.Audit()
	for _, r := range recs {
		if r.RequestID == id {
			if r.Decision != store.DecisionRefused || r.Error != string(code) || r.JTI != "" {
				t.Errorf("audit record %+v", r)
			}
			return
		}
	}
	for _, r := range recs {
		if r.Decision == store.DecisionRefused && r.Error == string(code) && strings.HasPrefix(r.RequestID, "dpop-") {
			return // counted in the record of an identical refusal
		}
	}
	t.Errorf("no audit record for request %s", id)
}

func usedJTIs(t *testing.T, s *ststest.STS) int {
	t.Helper()
	var n int
	if err := s.Store.DB().QueryRow(`SELECT count(*) FROM used_jtis`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRFC9449_BadInputChangesNothing is the DPoP bad-input table at the
// token endpoint: each request gets a clear error, changes no token,
// client, revocation or used jti, and is audited as refused.
func TestRFC9449_BadInputChangesNothing(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	keyA, keyB := newDPoPKey(t), newDPoPKey(t)
	plain := s.CreateClient(func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	opaque := s.CreateClient(func(c *store.Client) { c.TokenFormat = store.TokenFormatOpaque })
	bound := s.CreateClient(func(c *store.Client) { c.Binding.DPoPBoundTokens = true })
	proofA := func() string { return keyA.proof(t, s.URL, dpop.ProofOptions{}) }
	proofB := func() string { return keyB.proof(t, s.URL, dpop.ProofOptions{}) }

	// Tokens bound to key A: a JWT, an opaque token, a refresh token.
	boundJWT := wantOK(t, postDPoP(t, s, plain, ccForm, proofA())).AccessToken
	boundOpaque := wantOK(t, postDPoP(t, s, opaque, ccForm, proofA())).AccessToken
	boundRefresh := wantOK(t, postDPoP(t, s, plain, exchangeForm(boundJWT, "requested_token_type", oauth.TokenTypeRefreshToken), proofA())).AccessToken
	certBound := mint(t, s, func(c *token.Claims) {
		c.Subject, c.ClientID, c.Audience = plain.ID, plain.ID, nil
		c.Cnf = json.RawMessage(`{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}`)
	})
	unknownCnf := mint(t, s, func(c *token.Claims) {
		c.Subject, c.ClientID, c.Audience = plain.ID, plain.ID, nil
		c.Cnf = json.RawMessage(`{"jwk":{"kty":"EC"}}`)
	})
	// A proof used once, then replayed.
	replayed := proofA()
	wantOK(t, postDPoP(t, s, plain, ccForm, replayed))

	now := time.Now()
	pub := jose.JSONWebKey{Key: keyA.k.Public()}
	priv := jose.JSONWebKey{Key: keyA.k}
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"jti": token.NewID(), "htm": "POST", "htu": s.URL + server.TokenPath, "iat": now.Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	hdr := func(jwk any) map[jose.HeaderKey]any {
		return map[jose.HeaderKey]any{"typ": "dpop+jwt", "jwk": jwk}
	}
	noneProof := func() string {
		h := b64(mustJSON(t, map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": pub}))
		return h + "." + b64(mustJSON(t, claims(nil))) + "."
	}
	hsProof := func() string {
		// HS256 keyed with the public key's bytes, the classic confusion.
		return rawProof(t, []byte(b64(mustJSON(t, pub))), jose.HS256, hdr(pub), claims(nil))
	}

	tests := []struct {
		name   string
		req    func() *http.Request
		code   oauth.ErrorCode
		detail string
	}{
		{"private key in jwk", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(priv), claims(nil)))
		}, ErrInvalidDPoPProof, "private key material"},
		{"symmetric alg", func() *http.Request { return tokenRequest(t, s, plain, ccForm, hsProof()) }, ErrInvalidDPoPProof, "accepted algorithm"},
		{"symmetric key in jwk", func() *http.Request {
			k := []byte("0123456789abcdef0123456789abcdef")
			return tokenRequest(t, s, plain, ccForm, rawProof(t, k, jose.HS256, hdr(map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(k)}), claims(nil)))
		}, ErrInvalidDPoPProof, "private key material"},
		{"alg none", func() *http.Request { return tokenRequest(t, s, plain, ccForm, noneProof()) }, ErrInvalidDPoPProof, "accepted algorithm"},
		{"typ JWT", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, map[jose.HeaderKey]any{"typ": "JWT", "jwk": pub}, claims(nil)))
		}, ErrInvalidDPoPProof, "typ"},
		{"signed by another key than its jwk", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyB.k, jose.ES256, hdr(pub), claims(nil)))
		}, ErrInvalidDPoPProof, "signature"},
		{"wrong htm", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(pub), claims(func(c map[string]any) { c["htm"] = "GET" })))
		}, ErrInvalidDPoPProof, "htm"},
		{"wrong htu", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(pub), claims(func(c map[string]any) { c["htu"] = s.URL + server.IntrospectPath })))
		}, ErrInvalidDPoPProof, "htu"},
		{"stale iat", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(pub), claims(func(c map[string]any) { c["iat"] = now.Add(-time.Hour).Unix() })))
		}, ErrInvalidDPoPProof, "too old"},
		{"future iat", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(pub), claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })))
		}, ErrInvalidDPoPProof, "future"},
		{"no jti", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, rawProof(t, keyA.k, jose.ES256, hdr(pub), claims(func(c map[string]any) { delete(c, "jti") })))
		}, ErrInvalidDPoPProof, "jti"},
		{"oversized proof", func() *http.Request {
			return tokenRequest(t, s, plain, ccForm, strings.Repeat("a", dpop.MaxProofSize+1))
		}, ErrInvalidDPoPProof, "longer than"},
		{"two DPoP headers", func() *http.Request { return tokenRequest(t, s, plain, ccForm, proofA(), proofA()) }, ErrInvalidDPoPProof, "one DPoP header"},
		{"replayed jti", func() *http.Request { return tokenRequest(t, s, plain, ccForm, replayed) }, ErrInvalidDPoPProof, "already used"},
		{"DPoP-bound client without a proof", func() *http.Request { return tokenRequest(t, s, bound, ccForm) }, ErrInvalidDPoPProof, "dpop_bound_access_tokens"},
		{"bound refresh token without a proof", func() *http.Request {
			return tokenRequest(t, s, plain, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {boundRefresh}})
		}, oauth.ErrInvalidGrant, "bound to a DPoP key"},
		{"bound refresh token, proof from key B", func() *http.Request {
			return tokenRequest(t, s, plain, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {boundRefresh}}, proofB())
		}, oauth.ErrInvalidGrant, "another DPoP key"},
		{"bound subject token without a proof", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(boundJWT))
		}, oauth.ErrInvalidRequest, "bound to a DPoP key"},
		{"bound subject token, proof from key B", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(boundJWT), proofB())
		}, oauth.ErrInvalidRequest, "another DPoP key"},
		{"bound opaque subject token without a proof", func() *http.Request {
			return tokenRequest(t, s, opaque, exchangeForm(boundOpaque))
		}, oauth.ErrInvalidRequest, "bound to a DPoP key"},
		{"bound actor token, proof from key B", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(mint(t, s, func(c *token.Claims) { c.Subject, c.ClientID, c.Audience = plain.ID, plain.ID, nil }),
				"actor_token", boundJWT, "actor_token_type", oauth.TokenTypeAccessToken), proofB())
		}, oauth.ErrInvalidRequest, "actor_token is bound to another DPoP key"},
		{"bound refresh token as subject, proof from key B", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(boundRefresh, "subject_token_type", oauth.TokenTypeRefreshToken), proofB())
		}, oauth.ErrInvalidRequest, "another DPoP key"},
		{"certificate-bound subject token over plain HTTP", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(certBound), proofA())
		}, oauth.ErrInvalidRequest, "bound to a client certificate"},
		{"cnf of an unknown kind", func() *http.Request {
			return tokenRequest(t, s, plain, exchangeForm(unknownCnf), proofA())
		}, oauth.ErrInvalidRequest, "cannot check"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, jtis := snapshotDB(t, s), usedJTIs(t, s)
			req := tt.req()
			id := fmt.Sprintf("dpop-%03d", i)
			req.Header.Set("X-Request-Id", id)
			r := s.Do(req)
			if d := wantError(t, r, http.StatusBadRequest, tt.code); !strings.Contains(d, tt.detail) {
				t.Errorf("error_description %q, want it to mention %q", d, tt.detail)
			}
			if after := snapshotDB(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("state changed:\nbefore %v\nafter  %v", before, after)
			}
			// A refused proof is not consumed (a valid one on a request
			// refused later is: it was used).
			if n := usedJTIs(t, s); tt.code == ErrInvalidDPoPProof && n != jtis {
				t.Errorf("used jtis %d -> %d", jtis, n)
			}
			refusalAudited(t, s, id, tt.code)
		})
	}
	// The bound tokens still work with key A: the refusals were about
	// the input.
	wantOK(t, postDPoP(t, s, plain, exchangeForm(boundJWT), proofA()))
	wantOK(t, postDPoP(t, s, opaque, exchangeForm(boundOpaque), proofA()))
	wantOK(t, postDPoP(t, s, plain, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {boundRefresh}}, proofA()))
}

// Error codes of RFC 9449 §12.2, as the tests expect them on the wire.
const (
	ErrInvalidDPoPProof oauth.ErrorCode = "invalid_dpop_proof"
	ErrUseDPoPNonce     oauth.ErrorCode = "use_dpop_nonce"
)

// TestRFC9449_8_Nonce: with --dpop-nonce a proof without the server's
// nonce is answered use_dpop_nonce with a DPoP-Nonce header, audited, and
// the retry with it succeeds; another instance sharing the key accepts
// the nonce, since nonces are derived, not stored.
func TestRFC9449_8_Nonce(t *testing.T) {
	nonceKey := []byte("an instance-shared nonce key, 32")
	s := ststest.Start(t, ststest.Options{DPoPNonceKey: nonceKey})
	c := s.CreateClient(nil)
	key := newDPoPKey(t)
	req := tokenRequest(t, s, c, ccForm, key.proof(t, s.URL, dpop.ProofOptions{}))
	req.Header.Set("X-Request-Id", "dpop-nonce-1")
	r := s.Do(req)
	wantError(t, r, http.StatusBadRequest, ErrUseDPoPNonce)
	nonce := r.Header.Get(dpop.NonceHeader)
	if nonce == "" {
		t.Fatalf("no DPoP-Nonce header: %v", r.Header)
	}
	refusalAudited(t, s, "dpop-nonce-1", ErrUseDPoPNonce)
	// A made-up nonce is refused the same way.
	wantError(t, postDPoP(t, s, c, ccForm, key.proof(t, s.URL, dpop.ProofOptions{Nonce: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})), http.StatusBadRequest, ErrUseDPoPNonce)
	tr := wantOK(t, postDPoP(t, s, c, ccForm, key.proof(t, s.URL, dpop.ProofOptions{Nonce: nonce})))
	if tr.TokenType != oauth.TokenTypeDPoP {
		t.Fatalf("token_type %q", tr.TokenType)
	}
	// Another instance on the same database and key.
	peer := s.StartPeer(ststest.Options{DPoPNonceKey: nonceKey})
	wantOK(t, postDPoP(t, peer, c, ccForm, key.proof(t, peer.URL, dpop.ProofOptions{Nonce: nonce})))
	// An instance with another key does not.
	other := s.StartPeer(ststest.Options{DPoPNonceKey: []byte("another nonce key, 32 bytes long")})
	wantError(t, postDPoP(t, other, c, ccForm, key.proof(t, other.URL, dpop.ProofOptions{Nonce: nonce})), http.StatusBadRequest, ErrUseDPoPNonce)
}

// TestRFC9449_11_1_ReplayAcrossInstances: two instances behind one issuer
// share the database; a proof accepted by one is refused by the other.
func TestRFC9449_11_1_ReplayAcrossInstances(t *testing.T) {
	const issuer = "https://sts.example.test"
	t.Run("sqlite", func(t *testing.T) {
		a := ststest.Start(t, ststest.Options{Issuer: issuer})
		b := a.StartPeer(ststest.Options{Issuer: issuer})
		c := a.CreateClient(nil)
		replayAcross(t, a, b, c, issuer)
	})
	t.Run("postgres", func(t *testing.T) {
		schema := ststest.PostgresSchema(t)
		a := ststest.StartOn(t, ststest.OpenPostgres(t, schema), ststest.Options{Issuer: issuer})
		b := ststest.StartOn(t, ststest.OpenPostgres(t, schema), ststest.Options{Issuer: issuer})
		secret := "replay-across-instances-secret"
		cl := &store.Client{
			ID: "c-replay", Name: "replay", Status: store.ClientActive, TokenFormat: store.TokenFormatJWT,
			GrantTypes: []string{oauth.GrantTypeClientCredentials}, SecretHash: a.Hasher.Hash(secret),
			CreatedAt: time.Now(), UpdatedAt: time.Now(),
		}
		st := ststest.OpenPostgres(t, schema)
		if err := st.CreateClient(context.Background(), cl); err != nil {
			t.Fatal(err)
		}
		replayAcross(t, a, b, &ststest.Client{Client: cl, Secret: secret}, issuer)
	})
}

func replayAcross(t *testing.T, a, b *ststest.STS, c *ststest.Client, issuer string) {
	t.Helper()
	key := newDPoPKey(t)
	p := key.proof(t, issuer, dpop.ProofOptions{})
	if tr := wantOK(t, postDPoP(t, a, c, ccForm, p)); cnfOf(t, tr.AccessToken).JKT != key.jkt {
		t.Fatalf("not bound: %+v", tr)
	}
	d := wantError(t, postDPoP(t, b, c, ccForm, p), http.StatusBadRequest, ErrInvalidDPoPProof)
	if !strings.Contains(d, "already used") {
		t.Fatalf("replay at the other instance: %q", d)
	}
	// A fresh proof works at the second instance.
	wantOK(t, postDPoP(t, b, c, ccForm, key.proof(t, issuer, dpop.ProofOptions{})))
}

// TestRFC9449_Metadata: the algorithms accepted in proofs are published,
// asymmetric only.
func TestRFC9449_Metadata(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	r := s.Do(newRequest(t, http.MethodGet, s.URL+"/.well-known/oauth-authorization-server", "", ""))
	var md oauth.Metadata
	if err := json.Unmarshal(r.Body, &md); err != nil {
		t.Fatal(err)
	}
	if len(md.DPoPSigningAlgValuesSupported) == 0 {
		t.Fatalf("no dpop_signing_alg_values_supported: %s", r.Body)
	}
	for _, a := range md.DPoPSigningAlgValuesSupported {
		if strings.HasPrefix(a, "HS") || a == "none" {
			t.Errorf("symmetric or none algorithm %q published", a)
		}
	}
}

// TestBoundExchange_Certificate (SPEC §7, RFC 8705 §3): a token bound to a
// client certificate is exchanged only over a connection presenting that
// certificate, and what is issued is bound to it again; another
// certificate, or none, is refused and audited.
func TestBoundExchange_Certificate(t *testing.T) {
	s, ca := mtlsServer(t, ststest.Options{})
	dn := pkixName("radio-7")
	leaf := ca.Issue(t, ststest.CertOptions{Subject: dn})
	sameDN := ca.Issue(t, ststest.CertOptions{Subject: dn}) // another key, same name
	self := ststest.SelfSigned(t, ststest.CertOptions{Subject: pkixName("elsewhere")})
	radio := tlsClient(s, store.Binding{TLSSubjectDN: "CN=radio-7"})
	rs := s.CreateClient(func(c *store.Client) { c.ExchangeAny = true })
	x5t := clientcertThumbprint(leaf)

	r := s.PostCert(server.TokenPath, leaf, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "client_id": {radio.ID}})
	tr := wantOK(t, r)
	if got := cnfOf(t, tr.AccessToken); got.X5tS256 != x5t || got.JKT != "" || tr.TokenType != oauth.TokenTypeBearer {
		t.Fatalf("certificate-bound token: %+v, cnf %+v", tr, got)
	}
	m := s.PostCert(server.IntrospectPath, leaf, url.Values{"token": {tr.AccessToken}, "client_id": {radio.ID}}).JSON()
	if introspectedCnf(t, m).X5tS256 != x5t {
		t.Fatalf("introspection: %v", m)
	}
	subject := tr.AccessToken

	// The same client and certificate: exchanged, bound again.
	ex := wantOK(t, s.PostCert(server.TokenPath, leaf, url.Values{"client_id": {radio.ID}, "grant_type": {oauth.GrantTypeTokenExchange},
		"subject_token": {subject}, "subject_token_type": {oauth.TokenTypeAccessToken}}))
	if got := cnfOf(t, ex.AccessToken); got.X5tS256 != x5t {
		t.Fatalf("exchanged token cnf %+v, want x5t#S256 %s", got, x5t)
	}
	// Another client (Basic credentials) presenting the bound certificate
	// proves possession too.
	withCert := func(cert *ststest.Cert, c *ststest.Client, form url.Values, id string) *ststest.Response {
		req := tokenRequest(t, s, c, form)
		req.Header.Set("X-Request-Id", id)
		return s.DoWith(s.Client(cert), req)
	}
	ex = wantOK(t, withCert(leaf, rs, exchangeForm(subject), "x5t-ok"))
	if got := cnfOf(t, ex.AccessToken); got.X5tS256 != x5t {
		t.Fatalf("exchanged by rs: cnf %+v", got)
	}

	for i, tt := range []struct {
		name   string
		cert   *ststest.Cert
		form   url.Values
		detail string
	}{
		{"no certificate", nil, exchangeForm(subject), "bound to a client certificate"},
		{"another certificate", self, exchangeForm(subject), "another client certificate"},
		{"same name, another key", sameDN, exchangeForm(subject), "another client certificate"},
		{"a DPoP proof is no certificate", nil, exchangeForm(subject), "bound to a client certificate"},
		{"bound actor token, another certificate", self, exchangeForm(mint(t, s, nil), "actor_token", subject, "actor_token_type", oauth.TokenTypeAccessToken), "actor_token is bound to another client certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshotDB(t, s)
			id := fmt.Sprintf("dpop-x5t-%d", i)
			req := tokenRequest(t, s, rs, tt.form)
			if strings.Contains(tt.name, "DPoP") {
				req.Header.Set(dpop.Header, newDPoPKey(t).proof(t, s.URL, dpop.ProofOptions{}))
			}
			req.Header.Set("X-Request-Id", id)
			r := s.DoWith(s.Client(tt.cert), req)
			if d := wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidRequest); !strings.Contains(d, tt.detail) {
				t.Errorf("error_description %q, want %q", d, tt.detail)
			}
			if after := snapshotDB(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("state changed")
			}
			refusalAudited(t, s, id, oauth.ErrInvalidRequest)
		})
	}
	// The certificate-bound client without its certificate cannot even get
	// a token: client authentication needs it (mTLS); a secret client
	// whose tokens are certificate-bound must present one.
	bound := s.CreateClient(func(c *store.Client) { c.Binding.TLSBoundTokens = true })
	d := wantError(t, withCert(nil, bound, ccForm, "dpop-x5t-secret"), http.StatusBadRequest, oauth.ErrInvalidRequest)
	if !strings.Contains(d, "tls_client_certificate_bound_access_tokens") {
		t.Fatalf("secret client without certificate: %q", d)
	}
	if got := cnfOf(t, wantOK(t, withCert(self, bound, ccForm, "dpop-x5t-secret-ok")).AccessToken); got.X5tS256 != clientcertThumbprint(self) {
		t.Fatalf("secret client with certificate: cnf %+v", got)
	}
}

// TestBoundExchange_DPoP (SPEC §7, RFC 9449): a DPoP-bound token, JWT or
// opaque, is exchanged with a proof of its key, and the issued token is
// bound to the same key (token_type DPoP).
func TestBoundExchange_DPoP(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	key := newDPoPKey(t)
	for _, format := range []string{store.TokenFormatJWT, store.TokenFormatOpaque} {
		t.Run(format, func(t *testing.T) {
			c := s.CreateClient(func(c *store.Client) { c.TokenFormat = format })
			subject := wantOK(t, postDPoP(t, s, c, ccForm, key.proof(t, s.URL, dpop.ProofOptions{}))).AccessToken
			ex := wantOK(t, postDPoP(t, s, c, exchangeForm(subject), key.proof(t, s.URL, dpop.ProofOptions{})))
			if ex.TokenType != oauth.TokenTypeDPoP {
				t.Fatalf("token_type %q", ex.TokenType)
			}
			if got := introspectedCnf(t, introspect(t, s, c, ex.AccessToken)); got.JKT != key.jkt {
				t.Fatalf("exchanged token cnf %+v", got)
			}
			// And again, from the exchanged token.
			wantOK(t, postDPoP(t, s, c, exchangeForm(ex.AccessToken), key.proof(t, s.URL, dpop.ProofOptions{})))
		})
	}
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func clientcertThumbprint(c *ststest.Cert) string { return clientcert.Thumbprint(c.Cert) }

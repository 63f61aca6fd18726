package register_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// uploadOrg creates an organization that signs its own IATs with the key
// of an uploaded certificate (alg ES256 or RS256).
func uploadOrg(t *testing.T, s *ststest.STS, alg string) (*store.Account, crypto.Signer) {
	t.Helper()
	var priv crypto.Signer
	var err error
	if alg == "RS256" {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Org " + alg},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, _, err := s.Accounts.Create(ctx, store.AccountOrganization, "Org "+alg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accounts.UploadCertificate(ctx, a.ID, der); err != nil {
		t.Fatal(err)
	}
	return a, priv
}

var jtiSeq struct {
	sync.Mutex
	n int
}

// iatClaims are valid IAT claims for the account at s.
func iatClaims(s *ststest.STS, accountID string) map[string]any {
	jtiSeq.Lock()
	jtiSeq.n++
	n := jtiSeq.n
	jtiSeq.Unlock()
	now := s.Clock.Now()
	return map[string]any{"iss": accountID, "aud": s.URL + register.Path, "iat": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(), "jti": fmt.Sprintf("test-%d-%d", now.UnixNano(), n)}
}

func withClaims(c map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// The IAT table over HTTP: what the registration endpoint accepts as an
// initial access token and what it refuses with 401 invalid_token.
func TestRegisterInitialAccessTokens(t *testing.T) {
	s := ststest.Start(t, ststest.Options{
		PerAddressPerMinute: 1000, PerAccountPerMinute: 1000,
		IATRequiredClaims: map[string][]string{"spectrum": {"fcc_id"}},
	})
	ctx := context.Background()
	ind := s.NewAccount(store.AccountIndividual, "Alice")
	issuedOrg := s.NewAccount(store.AccountOrganization, "Issued ES256")
	issuedRSA, _, _ := s.Accounts.Create(ctx, store.AccountOrganization, "Issued RS256", nil, nil)
	if _, err := s.Accounts.IssueCertificate(ctx, issuedRSA.ID, "RS256", 0); err != nil {
		t.Fatal(err)
	}
	esOrg, esKey := uploadOrg(t, s, "ES256")
	rsOrg, rsKey := uploadOrg(t, s, "RS256")
	certs, _ := s.Store.ListCertificates(ctx, rsOrg.ID)
	suspended := s.NewAccount(store.AccountIndividual, "Suspended")
	suspendedIAT := s.IAT(suspended.ID, nil)
	if _, err := s.Accounts.SetStatus(ctx, suspended.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	hs := func(key string, c map[string]any) string { return signJWS(t, jose.HS256, []byte(key), c) }
	replayed := s.IAT(ind.ID, nil)
	if r := s.Register(replayed, map[string]any{"client_name": "first"}); r.Status != http.StatusCreated {
		t.Fatalf("first use: %d %s", r.Status, r.Body)
	}
	for _, tc := range []struct {
		name  string
		iat   string
		scope string
		ok    bool
	}{
		{"HS256 with the account's secret", hs(ind.Secret, iatClaims(s, ind.ID)), "", true},
		{"HS256 with a wrong secret", hs(ind.Secret+"x", iatClaims(s, ind.ID)), "", false},
		{"ES256 with an uploaded certificate", signJWS(t, jose.ES256, esKey, iatClaims(s, esOrg.ID)), "", true},
		{"RS256 with an uploaded certificate", signJWS(t, jose.RS256, rsKey, iatClaims(s, rsOrg.ID)), "", true},
		{"ES256 with a server-issued certificate", s.IAT(issuedOrg.ID, nil), "", true},
		{"RS256 with a server-issued certificate", s.IAT(issuedRSA.ID, nil), "", true},
		{"alg none", "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(mustJSON(iatClaims(s, ind.ID))) + ".", "", false},
		{"HS256 keyed with the organization's certificate", hs(string(certs[0].DER), iatClaims(s, rsOrg.ID)), "", false},
		{"expired", hs(ind.Secret, withClaims(iatClaims(s, ind.ID), "iat", time.Now().Add(-time.Hour).Unix(), "exp", time.Now().Add(-time.Minute).Unix())), "", false},
		{"wrong aud", hs(ind.Secret, withClaims(iatClaims(s, ind.ID), "aud", "https://other.example.com")), "", false},
		{"replayed jti", replayed, "", false},
		{"suspended account", suspendedIAT, "", false},
		{"scope without its required claim", s.IAT(ind.ID, nil), "spectrum", false},
		{"scope with its required claim", s.IAT(ind.ID, map[string]any{"fcc_id": "2AS3K-1"}), "spectrum", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := map[string]any{"client_name": tc.name}
			if tc.scope != "" {
				md["scope"] = tc.scope
			}
			r := s.Register(tc.iat, md)
			if tc.ok {
				if r.Status != http.StatusCreated {
					t.Fatalf("%d %s", r.Status, r.Body)
				}
				return
			}
			wantInvalidToken(t, r)
		})
	}
	// The refusals are audited with their error code and account.
	var refused int
	for _, rec := range s.Audit() {
		if rec.Action == "client.register" && rec.Decision == store.DecisionRefused && rec.Error == "invalid_token" {
			refused++
		}
	}
	if refused < 8 {
		t.Errorf("%d refused registrations audited, want 8", refused)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// A typo in the metadata does not burn the IAT: its jti is spent only once
// the registration is otherwise valid.
func TestRegisterBadMetadataKeepsIAT(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 1000})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, nil)
	wantError(t, s.Register(iat, map[string]any{"grant_types": []string{"client-credentials"}}), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	if r := s.Register(iat, map[string]any{"grant_types": []string{"client_credentials"}}); r.Status != http.StatusCreated {
		t.Fatalf("second try with the same IAT: %d %s", r.Status, r.Body)
	}
	wantInvalidToken(t, s.Register(iat, map[string]any{"client_name": "again"}))
}

// The bad-metadata table: each is refused, nothing is registered, and the
// one IAT they all use is still good afterwards.
func TestRegisterBadMetadata(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 1000})
	ctx := context.Background()
	acct, _, err := s.Accounts.Create(ctx, store.AccountIndividual, "Bounded", []string{"https://api.example.com", "sas"}, []string{"read write"})
	if err != nil {
		t.Fatal(err)
	}
	iat := s.IAT(acct.ID, nil)
	md := func(kv ...any) map[string]any { return withClaims(map[string]any{"client_name": "x"}, kv...) }
	huge := strings.Repeat("a", register.MaxBodyBytes)
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privateJWKS := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: priv, KeyID: "k"}}}
	type tc struct {
		name   string
		body   any
		status int
		code   oauth.ErrorCode
	}
	meta := func(name string, body any) tc {
		return tc{name, body, http.StatusBadRequest, oauth.ErrInvalidClientMetadata}
	}
	for _, c := range []tc{
		// Wrong types.
		meta("client_name a number", md("client_name", 42)),
		meta("grant_types a string", md("grant_types", "client_credentials")),
		meta("grant_types with a number", md("grant_types", []any{"client_credentials", 1})),
		meta("scope an array", md("scope", []string{"read"})),
		meta("contacts a string", md("contacts", "ops@example.com")),
		meta("contacts with an empty string", md("contacts", []string{""})),
		meta("audiences a string", md("audiences", "sas")),
		meta("allow_impersonation a string", md("allow_impersonation", "true")),
		meta("access_token_ttl a string", md("access_token_ttl", "3600")),
		meta("access_token_ttl negative", md("access_token_ttl", -1)),
		meta("access_token_ttl fractional", md("access_token_ttl", 1.5)),
		meta("refresh_token_ttl huge", md("refresh_token_ttl", 1e18)),
		meta("extended_parameters with a number", md("extended_parameters", map[string]any{"a": 1})),
		meta("extended_parameters an array", md("extended_parameters", []string{"a"})),
		meta("software_id a number", md("software_id", 7)),
		meta("jwks not a JWK set", md("jwks", map[string]any{"kty": "EC"})),
		meta("jwks with a private key", md("jwks", privateJWKS)),
		meta("hardware_address not a MAC", md("hardware_address", "00:1a:2b")),
		meta("hardware_address a number", md("hardware_address", 12)),
		meta("client_uri not http", md("client_uri", "javascript:alert(1)")),
		meta("logo_uri relative", md("logo_uri", "/logo.png")),
		meta("client_name too long", md("client_name", strings.Repeat("n", 201))),
		meta("client_name with a control character", md("client_name", "a\u0007b")),
		// Grant and response types this server does not have.
		meta("grant type authorization_code", md("grant_types", []string{"authorization_code"})),
		meta("grant type implicit", md("grant_types", []string{"implicit"})),
		meta("grant type password", md("grant_types", []string{"password"})),
		meta("unknown grant type", md("grant_types", []string{"urn:example:grant"})),
		meta("grant type alias", md("grant_types", []string{"token-exchange"})),
		meta("response_types code", md("response_types", []string{"code"})),
		meta("redirect_uris", md("redirect_uris", []string{"https://app.example.com/cb"})),
		meta("auth method none", md("token_endpoint_auth_method", "none")),
		meta("auth method private_key_jwt", md("token_endpoint_auth_method", "private_key_jwt")),
		meta("token_format paseto", md("token_format", "paseto")),
		// Audiences that a token request could never name.
		meta("audience not absolute", md("audiences", []string{"://api.example.com"})),
		meta("audience with a fragment", md("audiences", []string{"https://api.example.com/#x"})),
		meta("audience with white space", md("audiences", []string{"https://api.example.com/a b"})),
		meta("empty audience", md("audiences", []string{""})),
		// Outside the account's bounds.
		meta("audience outside the account", md("audiences", []string{"https://other.example.com"})),
		meta("scope outside the account", md("scope", "read admin")),
		meta("scope token with a quote", md("scope", `read "x"`)),
		// Bodies.
		{"oversized body", md("client_name", "x", "contacts", []string{huge}), http.StatusRequestEntityTooLarge, oauth.ErrInvalidRequest},
		{"not JSON", "client_name=x", http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"JSON array", `[{"client_name":"x"}]`, http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"repeated member", `{"client_name":"x","client_name":"y"}`, http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"trailing data", `{"client_name":"x"}{}`, http.StatusBadRequest, oauth.ErrInvalidRequest},
		{"invalid UTF-8", []byte("{\"client_name\":\"\xff\"}"), http.StatusBadRequest, oauth.ErrInvalidRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, s.Register(iat, c.body), c.status, c.code)
		})
	}
	if cs, _ := s.Store.ListAccountClients(ctx, acct.ID); len(cs) != 0 {
		t.Errorf("%d clients registered by refused requests", len(cs))
	}
	// Inside the bounds, with the same IAT: accepted.
	r := s.Register(iat, md("audiences", []string{"sas"}, "scope", "read"))
	if r.Status != http.StatusCreated {
		t.Fatalf("valid registration after the refusals: %d %s", r.Status, r.Body)
	}
}

// Some clients percent-encode scope tokens; they are decoded.
func TestRegisterPercentEncodedScope(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, map[string]any{"client_name": "x", "scope": "read%20write api%3Aadmin 50%"})
	if reg.Metadata["scope"] != "read write api:admin 50%" {
		t.Errorf("scope %v", reg.Metadata["scope"])
	}
	c, _ := s.Store.GetClient(context.Background(), reg.ClientID)
	if !slices.Equal(c.Scopes, []string{"read", "write", "api:admin", "50%"}) {
		t.Errorf("stored scopes %q", c.Scopes)
	}
}

// Idempotent re-registration: the same account and identity get the same
// client_id with a new secret and a new registration access token; the
// old ones are refused.
func TestReregistrationRotatesSecretKeepsID(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 1000})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := map[string]any{"client_name": "radio", "software_id": "cbsd-fw", "hardware_address": "00:1A:2B:3C:4D:5E", "scope": "read"}
	first := s.RegisterClient(a.ID, md)
	md["scope"] = "read write"
	md["hardware_address"] = "00-1a-2b-3c-4d-5e" // the same MAC, written otherwise
	second := reregister(s, a.ID, md)
	if second.ClientID != first.ClientID {
		t.Fatalf("re-registration made a new client %s (was %s)", second.ClientID, first.ClientID)
	}
	if second.ClientSecret == first.ClientSecret || second.RegistrationAccessToken == first.RegistrationAccessToken {
		t.Fatal("re-registration kept the secret or the registration access token")
	}
	if second.ClientIDIssuedAt != first.ClientIDIssuedAt {
		t.Errorf("client_id_issued_at changed: %d → %d", first.ClientIDIssuedAt, second.ClientIDIssuedAt)
	}
	if second.Metadata["scope"] != "read write" || second.Metadata["hardware_address"] != "00:1a:2b:3c:4d:5e" {
		t.Errorf("re-registered metadata: %v", second.Metadata)
	}
	wantError(t, tokenFor(s, first.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	if r := tokenFor(s, second.Client()); r.Status != http.StatusOK {
		t.Errorf("new secret: %d %s", r.Status, r.Body)
	}
	wantInvalidToken(t, s.Manage(http.MethodGet, first, nil))
	if r := s.Manage(http.MethodGet, second, nil); r.Status != http.StatusOK {
		t.Errorf("new registration access token: %d", r.Status)
	}

	// Another device of the same software is another client; so is the
	// same identity in another account.
	md["hardware_address"] = "00:1a:2b:3c:4d:5f"
	if other := s.RegisterClient(a.ID, md); other.ClientID == first.ClientID {
		t.Error("another hardware address re-registered the first device")
	}
	b := s.NewAccount(store.AccountIndividual, "Bob")
	if other := s.RegisterClient(b.ID, md); other.ClientID == first.ClientID {
		t.Error("another account took over the client")
	}
	// Without software_id the identity is the client_name; without
	// either, every registration is new.
	n1 := s.RegisterClient(a.ID, map[string]any{"client_name": "billing"})
	n2 := reregister(s, a.ID, map[string]any{"client_name": "billing", "scope": "read"})
	if n1.ClientID != n2.ClientID {
		t.Error("the same client_name made two clients")
	}
	if s.RegisterClient(a.ID, map[string]any{}).ClientID == s.RegisterClient(a.ID, map[string]any{}).ClientID {
		t.Error("two anonymous registrations made one client")
	}
	var actions []string
	for _, rec := range s.Audit() {
		if rec.ClientID == first.ClientID {
			actions = append(actions, rec.Action)
		}
	}
	if !slices.Contains(actions, "client.register") || !slices.Contains(actions, "client.reregister") {
		t.Errorf("audited actions %v", actions)
	}
}

// Concurrent registrations of one identity make one client.
func TestReregistrationConcurrent(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 1000})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	const n = 8
	md := map[string]any{"software_id": "fw", "hardware_address": "02:00:00:00:00:01"}
	iats := make([]string, n)
	for i := range iats {
		iats[i] = boundIAT(s, a.ID, md)
	}
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.Register(iats[i], md)
			ids[i] = r.Registration().ClientID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("client ids %v, want one", ids)
		}
	}
	if cs, _ := s.Store.ListAccountClients(context.Background(), a.ID); len(cs) != 1 {
		t.Errorf("%d clients", len(cs))
	}
}

// Delayed activation: with RequireApproval new clients are pending, and
// refused at the token endpoint, until an operator approves them; a
// re-registration or update that widens an approved client makes it
// pending again.
func TestRequireApproval(t *testing.T) {
	s := ststest.Start(t, ststest.Options{RequireApproval: true})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := map[string]any{"client_name": "radio", "audiences": []string{"sas"}}
	reg := s.RegisterClient(a.ID, md)
	if reg.Status != "pending" {
		t.Fatalf("status %q, want pending", reg.Status)
	}
	wantError(t, tokenFor(s, reg.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	// The client can read its registration while it waits.
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusOK || r.JSON()["status"] != "pending" {
		t.Errorf("read while pending: %d %s", r.Status, r.Body)
	}
	// An operator approves (as `sts client approve` does).
	approve := func(id string) {
		t.Helper()
		reg := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
		if _, _, err := reg.SetStatus(context.Background(), "operator:test", id, store.ClientActive); err != nil {
			t.Fatal(err)
		}
		s.ExpireClientCache()
	}
	approve(reg.ClientID)
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusOK {
		t.Fatalf("after approval: %d %s", r.Status, r.Body)
	}
	// The same metadata again, with the registration access token (the
	// same holder): still approved, with the new secret.
	again := s.RegisterClient(a.ID, withToken(md, reg))
	if again.ClientID != reg.ClientID || again.Status != "active" {
		t.Fatalf("re-registration: %s %s", again.ClientID, again.Status)
	}
	// Wider: pending again.
	md["audiences"] = []string{"sas", "https://backend.example.com"}
	wider := s.RegisterClient(a.ID, withToken(md, again))
	if wider.Status != "pending" {
		t.Errorf("widening re-registration: status %q, want pending", wider.Status)
	}
	wantError(t, tokenFor(s, wider.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	approve(wider.ClientID)
	// Narrower through RFC 7592: stays active; wider: pending.
	r := s.Manage(http.MethodPut, wider, map[string]any{"client_id": wider.ClientID, "client_name": "radio", "audiences": []string{"sas"}})
	if r.Status != http.StatusOK || r.JSON()["status"] != "active" {
		t.Errorf("narrowing update: %d %s", r.Status, r.Body)
	}
	r = s.Manage(http.MethodPut, wider, map[string]any{"client_id": wider.ClientID, "client_name": "radio", "audiences": []string{"sas", "https://backend.example.com"}})
	if r.Status != http.StatusOK || r.JSON()["status"] != "pending" {
		t.Errorf("widening update: %d %s", r.Status, r.Body)
	}
	// A client an operator disabled is not re-enabled by re-registering.
	reg2 := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
	if _, _, err := reg2.SetStatus(context.Background(), "operator:test", wider.ClientID, store.ClientDisabled); err != nil {
		t.Fatal(err)
	}
	if got := reregister(s, a.ID, md); got.Status != "disabled" {
		t.Errorf("re-registration of a disabled client: status %q", got.Status)
	}
}

// Software statements that are badly signed, from an unknown issuer or
// expired are refused, and the IAT survives.
func TestSoftwareStatements(t *testing.T) {
	p := newPublisher(t, "https://publisher.example.com")
	s := ststest.Start(t, ststest.Options{Publishers: map[string]*jose.JSONWebKeySet{p.iss: p.set}, PerAddressPerMinute: 1000, PerAccountPerMinute: 1000})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, nil)
	impostor := newPublisher(t, p.iss) // same issuer and kids, other keys
	unknown := newPublisher(t, "https://unknown.example.com")
	now := time.Now()
	hsKey := make([]byte, 32)
	for _, c := range []struct {
		name string
		ss   any
		code oauth.ErrorCode
	}{
		{"bad signature", impostor.statement(t, "ec-1", nil), oauth.ErrInvalidSoftwareStatement},
		{"tampered payload", tamper(p.statement(t, "ec-1", map[string]any{"software_id": "a"})), oauth.ErrInvalidSoftwareStatement},
		{"unknown kid", func() string {
			return signJWS(t, jose.ES256, jose.JSONWebKey{Key: impostor.keys["ec-1"], KeyID: "nope"}, map[string]any{"iss": p.iss})
		}(), oauth.ErrInvalidSoftwareStatement},
		{"unknown issuer", unknown.statement(t, "ec-1", nil), oauth.ErrUnapprovedSoftwareStatement},
		{"expired", p.statement(t, "ec-1", map[string]any{"exp": now.Add(-time.Hour).Unix()}), oauth.ErrInvalidSoftwareStatement},
		{"issued in the future", p.statement(t, "ec-1", map[string]any{"iat": now.Add(time.Hour).Unix()}), oauth.ErrInvalidSoftwareStatement},
		{"not yet valid", p.statement(t, "ec-1", map[string]any{"nbf": now.Add(time.Hour).Unix()}), oauth.ErrInvalidSoftwareStatement},
		{"exp not a number", p.statement(t, "ec-1", map[string]any{"exp": "tomorrow"}), oauth.ErrInvalidSoftwareStatement},
		{"no iss", p.statement(t, "ec-1", map[string]any{"iss": nil}), oauth.ErrInvalidSoftwareStatement},
		{"HS256", signJWS(t, jose.HS256, hsKey, map[string]any{"iss": p.iss}), oauth.ErrInvalidSoftwareStatement},
		{"unsigned", "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+p.iss+`"}`)) + ".", oauth.ErrInvalidSoftwareStatement},
		{"malformed", "not-a-jws", oauth.ErrInvalidSoftwareStatement},
		{"not a string", map[string]any{"iss": p.iss}, oauth.ErrInvalidSoftwareStatement},
		{"valid statement, invalid metadata", p.statement(t, "ec-1", map[string]any{"grant_types": []string{"implicit"}}), oauth.ErrInvalidClientMetadata},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, s.Register(iat, map[string]any{"client_name": "x", "software_statement": c.ss}), http.StatusBadRequest, c.code)
		})
	}
	r := s.Register(iat, map[string]any{"software_statement": p.statement(t, "ec-1", map[string]any{"exp": now.Add(time.Hour).Unix(), "software_id": "ok"})})
	if r.Status != http.StatusCreated || r.JSON()["software_id"] != "ok" {
		t.Fatalf("valid statement with the IAT the refusals used: %d %s", r.Status, r.Body)
	}
}

// tamper changes the payload of a compact JWS and keeps its signature.
func tamper(jws string) string {
	parts := strings.Split(jws, ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	b = []byte(strings.Replace(string(b), `"software_id":"a"`, `"software_id":"b"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// Registration is rate limited per source address (requests without a
// valid token; see TestAddressLimitCountsFailures) and per account, with
// 429 and Retry-After.
func TestRegisterRateLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 3})
		for range 3 {
			s.Register("not-even-a-token", map[string]any{})
		}
		r := s.Register("not-even-a-token", map[string]any{})
		wantError(t, r, http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
		if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 20 {
			t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		s.Clock.Advance(time.Minute)
		a := s.NewAccount(store.AccountIndividual, "Alice")
		if r := s.Register(s.IAT(a.ID, nil), map[string]any{}); r.Status != http.StatusCreated {
			t.Errorf("after a minute: %d %s", r.Status, r.Body)
		}
	})
	t.Run("per account", func(t *testing.T) {
		s := ststest.Start(t, ststest.Options{PerAccountPerMinute: 2, PerAddressPerMinute: 100})
		a := s.NewAccount(store.AccountIndividual, "Alice")
		b := s.NewAccount(store.AccountIndividual, "Bob")
		s.RegisterClient(a.ID, map[string]any{})
		s.RegisterClient(a.ID, map[string]any{})
		iat := s.IAT(a.ID, nil)
		wantError(t, s.Register(iat, map[string]any{}), http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
		s.RegisterClient(b.ID, map[string]any{})
		// The limited request did not spend its IAT.
		s.Clock.Advance(time.Minute)
		if r := s.Register(iat, map[string]any{}); r.Status != http.StatusCreated {
			t.Errorf("after a minute: %d %s", r.Status, r.Body)
		}
		var limited bool
		for _, rec := range s.Audit() {
			limited = limited || (rec.AccountID == a.ID && rec.Error == "temporarily_unavailable")
		}
		if !limited {
			t.Error("the limited request was not audited")
		}
	})
}

// Every registration and change is in the audit table with who, what and
// when; no secret or token ever is.
func TestRegistrationAudit(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, nil)
	r := s.Register(iat, map[string]any{"client_name": "x"})
	reg := r.Registration()
	upd := s.Manage(http.MethodPut, reg, map[string]any{"client_id": reg.ClientID, "client_name": "y", "rotate_secret": true})
	wantError(t, s.Register(iat, map[string]any{}), http.StatusUnauthorized, oauth.ErrInvalidToken)
	s.Manage(http.MethodDelete, upd.Registration(), nil) // the rotation replaced the token

	secrets := []string{iat, reg.ClientSecret, reg.RegistrationAccessToken, upd.Registration().ClientSecret, upd.Registration().RegistrationAccessToken, a.Secret}
	want := map[string]string{
		"client.register": store.DecisionGranted, "client.update": store.DecisionGranted,
		"client.rotate_secret": store.DecisionGranted, "client.delete": store.DecisionGranted,
	}
	got := map[string]string{}
	var refused *store.AuditRecord
	for _, rec := range s.Audit() {
		for _, sec := range secrets {
			if sec != "" && strings.Contains(fmt.Sprintf("%+v", rec), sec) {
				t.Errorf("audit record %s holds a secret or token", rec.Action)
			}
		}
		if rec.Decision == store.DecisionRefused {
			rec := rec
			refused = &rec
			continue
		}
		got[rec.Action] = rec.Decision
		if rec.AccountID != a.ID || rec.Subject == "" || rec.Time.IsZero() {
			t.Errorf("record %s: account %q by %q at %v", rec.Action, rec.AccountID, rec.Subject, rec.Time)
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("audit %s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if refused == nil || refused.Action != "client.register" || refused.Error != "invalid_token" || refused.AccountID != a.ID || refused.Remote == "" {
		t.Errorf("refused registration audited as %+v", refused)
	}
}

// Impersonation (exchanging without appearing in act) is a right an
// operator grants; a registration cannot take it, but keeps it when an
// operator granted it.
func TestImpersonationOnlyFromOperators(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := map[string]any{"client_name": "gw", "allow_impersonation": true}
	if r := s.Register(s.IAT(a.ID, nil), md); r.Status != http.StatusBadRequest || r.Error() != string(oauth.ErrInvalidClientMetadata) {
		t.Fatalf("self-granted impersonation: %d %s", r.Status, r.Body)
	}
	md["allow_impersonation"] = false
	reg := s.RegisterClient(a.ID, md)
	r := s.Manage(http.MethodPut, reg, map[string]any{"client_id": reg.ClientID, "client_name": "gw", "allow_impersonation": true})
	if r.Status != http.StatusBadRequest || r.Error() != string(oauth.ErrInvalidClientMetadata) {
		t.Fatalf("impersonation gained by update: %d %s", r.Status, r.Body)
	}
	registry := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
	if _, err := registry.Update(context.Background(), "operator:test", reg.ClientID, func(sp *clients.Spec) error {
		sp.AllowImpersonation = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r = s.Manage(http.MethodPut, reg, map[string]any{"client_id": reg.ClientID, "client_name": "gw", "allow_impersonation": true})
	if r.Status != http.StatusOK || r.JSON()["allow_impersonation"] != true {
		t.Fatalf("keeping an operator's grant: %d %s", r.Status, r.Body)
	}
	// A re-registration cannot ask to keep it (it is a new registration
	// of the client, whoever holds it now), and drops it.
	md["allow_impersonation"] = true
	wantError(t, s.Register(boundIAT(s, a.ID, md), withToken(md, reg)), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	if c, _ := s.Store.GetClient(context.Background(), reg.ClientID); !c.AllowImpersonation {
		t.Fatal("a refused re-registration dropped the operator's grant")
	}
	md["allow_impersonation"] = false
	again := s.RegisterClient(a.ID, withToken(md, reg))
	if again.ClientID != reg.ClientID || again.Metadata["allow_impersonation"] != false {
		t.Fatalf("re-registration: %s, allow_impersonation %v", again.ClientID, again.Metadata["allow_impersonation"])
	}
	if c, _ := s.Store.GetClient(context.Background(), reg.ClientID); c.AllowImpersonation {
		t.Fatal("re-registration kept an operator's impersonation grant")
	}
}

// TestRefusalsLeaveIATUnspent (issue 9, item 2): every refusal found after
// the IAT verified — an operator-only member, a target outside the
// account's bounds, a missing required claim, an untrusted software
// statement, a bad type — leaves the IAT unspent, so that the same IAT
// registers once the metadata is right.
func TestRefusalsLeaveIATUnspent(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 1000,
		IATRequiredClaims: map[string][]string{"spectrum": {"fcc_id"}}})
	acct, _, err := s.Accounts.Create(context.Background(), store.AccountIndividual, "Bounded", []string{"sas"}, []string{"read spectrum"})
	if err != nil {
		t.Fatal(err)
	}
	iat := s.IAT(acct.ID, nil)
	for _, tc := range []struct {
		name string
		md   map[string]any
	}{
		{"allow_impersonation", map[string]any{"client_name": "r", "allow_impersonation": true}},
		{"audience outside the account", map[string]any{"client_name": "r", "audiences": []string{"https://elsewhere.example.com"}}},
		{"scope outside the account", map[string]any{"client_name": "r", "scope": "admin"}},
		{"scope needing a claim the IAT lacks", map[string]any{"client_name": "r", "scope": "spectrum"}},
		{"untrusted software statement", map[string]any{"client_name": "r", "software_statement": "eyJhbGciOiJub25lIn0.e30."}},
		{"grant type misspelt", map[string]any{"client_name": "r", "grant_types": []string{"client-credentials"}}},
	} {
		r := s.Register(iat, tc.md)
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("%s: %d %s, want a refusal", tc.name, r.Status, r.Body)
		}
		if r.Status == http.StatusUnauthorized && !strings.Contains(string(r.Body), "needs the claim") {
			t.Errorf("%s: 401 %s: the IAT was refused without saying why", tc.name, r.Body)
		}
	}
	if r := s.Register(iat, map[string]any{"client_name": "r", "audiences": []string{"sas"}, "scope": "read"}); r.Status != http.StatusCreated {
		t.Fatalf("the same IAT after six refusals: %d %s", r.Status, r.Body)
	}
}

// TestAccountLimitCountsRegistrations (review of issue 8): the per-account
// limit is charged for registrations made, so refused requests with a
// leaked IAT (which stays unspent) cannot hold the account's devices at
// 429; the registrations themselves are still limited.
func TestAccountLimitCountsRegistrations(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 1000, PerAccountPerMinute: 2})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	leaked := s.IAT(a.ID, nil)
	for range 10 {
		wantError(t, s.Register(leaked, map[string]any{"client_name": "x", "allow_impersonation": true}), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	}
	for i := range 2 {
		if r := s.Register(s.IAT(a.ID, nil), map[string]any{"client_name": fmt.Sprint("device-", i)}); r.Status != http.StatusCreated {
			t.Fatalf("registration %d after 10 refusals: %d %s", i, r.Status, r.Body)
		}
	}
	if r := s.Register(s.IAT(a.ID, nil), map[string]any{"client_name": "device-3"}); r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("third registration within the minute: %d %s", r.Status, r.Body)
	}
}

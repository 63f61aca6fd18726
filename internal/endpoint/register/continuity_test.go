package register_test

// Re-registration proves continuity (issue 8, finding 5): an existing
// identity is re-registered only with the client's registration access
// token or an initial access token whose claims name it; a refused request
// changes nothing and leaves its IAT unspent.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/clients"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

var generousRates = ststest.Options{PerAddressPerMinute: 10000, PerAccountPerMinute: 10000}

// device is the metadata of one device of the account's software.
func device(hw string) map[string]any {
	return map[string]any{"client_name": "radio " + hw, "software_id": "cbsd-fw", "hardware_address": hw, "scope": "read"}
}

// wantUnspent requires that the jti of iat was not spent by the request
// refused before (it spends it now, as Consume would).
func wantUnspent(t *testing.T, s *ststest.STS, iat string) {
	t.Helper()
	_, claims, err := decodeJWT(iat)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := claims["iss"].(string)
	jti, _ := claims["jti"].(string)
	err = s.Store.ConsumeJTI(context.Background(), "iat:"+iss, jti, time.Now().Add(time.Hour))
	if errors.Is(err, store.ErrConflict) {
		t.Errorf("the IAT of a refused request was spent")
	} else if err != nil {
		t.Fatal(err)
	}
}

// decodeJWT reads a JWT's header and claims without checking anything.
func decodeJWT(tok string) (header, claims map[string]any, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS")
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return nil, nil, err
		}
	}
	return header, claims, nil
}

// wantWorks requires that the client's secret and registration access
// token still work.
func wantWorks(t *testing.T, s *ststest.STS, reg *ststest.Registration) {
	t.Helper()
	s.ExpireClientCache()
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusOK {
		t.Errorf("the secret of %s: %d %s", reg.ClientID, r.Status, r.Body)
	}
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusOK {
		t.Errorf("the registration access token of %s: %d %s", reg.ClientID, r.Status, r.Body)
	}
}

// The takeover of finding 5: IATs of the same account that do not name a
// device, or name another one, cannot re-register it; nor can another
// client's registration access token. The victim keeps working, each
// refusal is audited against it and no IAT is spent.
func TestReregistrationTakeoverRefused(t *testing.T) {
	s := ststest.Start(t, generousRates)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	mdA, mdB := device("02:00:00:00:00:0a"), device("02:00:00:00:00:0b")
	devA := s.Register(boundIAT(s, a.ID, mdA), mdA).Registration()
	devB := s.Register(boundIAT(s, a.ID, mdB), mdB).Registration()
	if devA.ClientID == "" || devB.ClientID == "" || devA.ClientID == devB.ClientID {
		t.Fatalf("two devices: %q %q", devA.ClientID, devB.ClientID)
	}

	for _, tc := range []struct {
		name   string
		iat    string
		body   map[string]any
		status int
		code   oauth.ErrorCode
	}{
		{"IAT naming no client", s.IAT(a.ID, nil), mdB, http.StatusBadRequest, oauth.ErrInvalidClientMetadata},
		{"IAT naming another device", boundIAT(s, a.ID, mdA), mdB, http.StatusBadRequest, oauth.ErrInvalidClientMetadata},
		{"IAT naming another software", s.IAT(a.ID, map[string]any{"software_id": "other", "hardware_address": "02:00:00:00:00:0b"}), mdB, http.StatusBadRequest, oauth.ErrInvalidClientMetadata},
		{"IAT naming the device by client_name", s.IAT(a.ID, map[string]any{"client_name": mdB["client_name"]}), mdB, http.StatusBadRequest, oauth.ErrInvalidClientMetadata},
		{"another client's registration access token", s.IAT(a.ID, nil), withToken(mdB, devA), http.StatusUnauthorized, oauth.ErrInvalidToken},
		{"a made-up registration access token", s.IAT(a.ID, nil), withToken(mdB, &ststest.Registration{RegistrationAccessToken: "sts_rat_guess"}), http.StatusUnauthorized, oauth.ErrInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.Register(tc.iat, tc.body)
			wantError(t, r, tc.status, tc.code)
			if tc.code == oauth.ErrInvalidClientMetadata {
				if d, _ := r.JSON()["error_description"].(string); !strings.Contains(d, "software_id") {
					t.Errorf("error_description %q does not say what is wrong", d)
				}
			}
			wantWorks(t, s, devB)
			wantUnspent(t, s, tc.iat)
		})
	}
	c, err := s.Store.GetClient(context.Background(), devB.ClientID)
	if err != nil || c.Name != mdB["client_name"] {
		t.Fatalf("the victim changed: %+v %v", c, err)
	}
	refused := 0
	for _, rec := range s.Audit() {
		if rec.ClientID == devB.ClientID && rec.Decision == store.DecisionRefused && rec.Action == "client.reregister" {
			refused++
		}
	}
	if refused < 5 {
		t.Errorf("%d refused re-registrations of the victim audited, want at least 5", refused)
	}

	// The device's own token, or an IAT naming it, does re-register it.
	again := s.RegisterClient(a.ID, withToken(mdB, devB))
	if again.ClientID != devB.ClientID {
		t.Errorf("re-registration with the registration access token made %s, want %s", again.ClientID, devB.ClientID)
	}
	wantWorks(t, s, again)
	if next := reregister(s, a.ID, mdB); next.ClientID != devB.ClientID {
		t.Errorf("re-registration with an IAT naming the device made %s, want %s", next.ClientID, devB.ClientID)
	}
}

// The Key Bridge model: a device that lost its secret and its registration
// access token re-registers with a new IAT bound to its identity and keeps
// its client id; whatever it held before stops working.
func TestDeviceLostSecretKeepsClientID(t *testing.T) {
	s := ststest.Start(t, generousRates)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := device("00:1A:2B:3C:4D:5E")
	first := s.Register(boundIAT(s, a.ID, md), md).Registration()
	// The account issues a new IAT for the device (the MAC address written
	// otherwise); the device registers the same metadata again.
	iat := s.IAT(a.ID, map[string]any{"software_id": "cbsd-fw", "hardware_address": "00-1a-2b-3c-4d-5e"})
	r := s.Register(iat, md)
	if r.Status != http.StatusCreated {
		t.Fatalf("re-registration: %d %s", r.Status, r.Body)
	}
	second := r.Registration()
	if second.ClientID != first.ClientID || second.ClientSecret == "" || second.ClientSecret == first.ClientSecret {
		t.Fatalf("re-registration: client %s (was %s), new secret %t", second.ClientID, first.ClientID, second.ClientSecret != first.ClientSecret)
	}
	wantWorks(t, s, second)
	wantError(t, tokenFor(s, first.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	wantInvalidToken(t, s.Manage(http.MethodGet, first, nil))
	// The IAT is spent now.
	wantError(t, s.Register(iat, md), http.StatusUnauthorized, oauth.ErrInvalidToken)
	if cs, _ := s.Store.ListAccountClients(context.Background(), a.ID); len(cs) != 1 {
		t.Errorf("%d clients, want 1", len(cs))
	}
}

// An IAT that names a client registers that client only: metadata naming
// another is refused (unspent), and so are identity claims that are not
// well-formed.
func TestBoundIATRegistersItsClientOnly(t *testing.T) {
	s := ststest.Start(t, generousRates)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, map[string]any{"software_id": "cbsd-fw", "hardware_address": "02:00:00:00:00:01"})
	wantError(t, s.Register(iat, device("02:00:00:00:00:02")), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	wantError(t, s.Register(iat, map[string]any{"client_name": "anything"}), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	if r := s.Register(iat, device("02:00:00:00:00:01")); r.Status != http.StatusCreated {
		t.Fatalf("the device the IAT names: %d %s", r.Status, r.Body)
	}
	for name, claims := range map[string]map[string]any{
		"hardware_address not a MAC":        {"software_id": "fw", "hardware_address": "nope"},
		"hardware_address without software": {"hardware_address": "02:00:00:00:00:01"},
		"software_id not a string":          {"software_id": 7},
	} {
		t.Run(name, func(t *testing.T) {
			wantInvalidToken(t, s.Register(s.IAT(a.ID, claims), device("02:00:00:00:00:01")))
		})
	}
}

// A re-registration with the registration access token: refused when the
// token has expired (401, IAT unspent), or when no client of the identity
// exists (a change of identity is an RFC 7592 update); the member must be
// a string.
func TestReregistrationWithRegistrationToken(t *testing.T) {
	o := generousRates
	o.RegistrationTokenTTL = time.Hour
	s := ststest.Start(t, o)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := device("02:00:00:00:00:01")
	reg := s.RegisterClient(a.ID, md)

	other := device("02:00:00:00:00:02")
	iat := s.IAT(a.ID, nil)
	wantError(t, s.Register(iat, withToken(other, reg)), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	bad := withToken(md, reg)
	bad["registration_access_token"] = 42
	wantError(t, s.Register(iat, bad), http.StatusBadRequest, oauth.ErrInvalidRequest)

	s.Clock.Advance(time.Hour)
	wantInvalidToken(t, s.Register(iat, withToken(md, reg)))
	wantUnspent(t, s, iat)
	// An IAT naming the device still re-registers it, with a fresh token.
	again := reregister(s, a.ID, md)
	if again.ClientID != reg.ClientID {
		t.Fatalf("re-registration made %s, want %s", again.ClientID, reg.ClientID)
	}
	wantWorks(t, s, again)
}

// --iat-required-claims: the claims a scope needs are stored with the
// client and compared on every re-registration, whichever proof it shows:
// a different value is refused (IAT unspent), the same value is fine.
func TestReregistrationComparesRequiredClaims(t *testing.T) {
	o := generousRates
	o.IATRequiredClaims = map[string][]string{"spectrum": {"fcc_id"}}
	s := ststest.Start(t, o)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := device("02:00:00:00:00:01")
	md["scope"] = "spectrum"
	reg := s.Register(boundIAT(s, a.ID, md, "fcc_id", "FCC-A"), md).Registration()
	c, err := s.Store.GetClient(context.Background(), reg.ClientID)
	if err != nil || string(c.IATClaims) != `{"fcc_id":"FCC-A"}` {
		t.Fatalf("stored IAT claims %q, %v", c.IATClaims, err)
	}

	for name, tc := range map[string]struct {
		iat  string
		body map[string]any
	}{
		"IAT naming the device":     {boundIAT(s, a.ID, md, "fcc_id", "FCC-B"), md},
		"registration access token": {s.IAT(a.ID, map[string]any{"fcc_id": "FCC-B"}), withToken(md, reg)},
		"without the scope":         {boundIAT(s, a.ID, md, "fcc_id", "FCC-B"), device("02:00:00:00:00:01")},
		"another type":              {boundIAT(s, a.ID, md, "fcc_id", 7), md},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.Register(tc.iat, tc.body)
			wantInvalidToken(t, r)
			if d, _ := r.JSON()["error_description"].(string); !strings.Contains(d, "fcc_id") {
				t.Errorf("error_description %q does not name the claim", d)
			}
			wantWorks(t, s, reg)
			wantUnspent(t, s, tc.iat)
		})
	}
	// Missing when the scope needs it: refused as before. Too large to
	// store: refused.
	wantInvalidToken(t, s.Register(boundIAT(s, a.ID, md), md))
	huge := boundIAT(s, a.ID, md, "fcc_id", strings.Repeat("x", register.MaxIATClaimsBytes))
	wantInvalidToken(t, s.Register(huge, md))
	wantUnspent(t, s, huge)
	// The same value: re-registered.
	r := s.Register(s.IAT(a.ID, map[string]any{"fcc_id": "FCC-A"}), withToken(md, reg))
	if r.Status != http.StatusCreated || r.Registration().ClientID != reg.ClientID {
		t.Fatalf("re-registration with the same claim: %d %s", r.Status, r.Body)
	}
	if r := s.Register(boundIAT(s, a.ID, md, "fcc_id", "FCC-A"), md); r.Status != http.StatusCreated {
		t.Errorf("the same claim: %d %s", r.Status, r.Body)
	}
	if c, _ := s.Store.GetClient(context.Background(), reg.ClientID); string(c.IATClaims) != `{"fcc_id":"FCC-A"}` {
		t.Errorf("stored IAT claims after re-registrations %q", c.IATClaims)
	}
}

// What an operator granted (impersonation, exchanging and introspecting
// any token, resource URIs) is not carried over by a re-registration, even
// one with the registration access token; an RFC 7592 update keeps it.
func TestReregistrationDropsOperatorGrants(t *testing.T) {
	s := ststest.Start(t, generousRates)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	md := map[string]any{"client_name": "rs"}
	reg := s.RegisterClient(a.ID, md)
	grant := func() {
		t.Helper()
		if _, err := s.Store.UpdateClient(context.Background(), reg.ClientID, func(c *store.Client) error {
			c.AllowImpersonation, c.ExchangeAny, c.IntrospectAny = true, true, true
			c.Resources = []string{"https://rs.example.com"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	granted := func() (bool, bool, bool, bool) {
		c, err := s.Store.GetClient(context.Background(), reg.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		return c.AllowImpersonation, c.ExchangeAny, c.IntrospectAny, slices.Equal(c.Resources, []string{"https://rs.example.com"})
	}
	grant()
	if r := s.Manage(http.MethodPut, reg, update(reg, map[string]any{"client_name": "rs", "allow_impersonation": true})); r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if i, x, in, res := granted(); !i || !x || !in || !res {
		t.Errorf("an update dropped grants: impersonation %t, exchange any %t, introspect any %t, resources %t", i, x, in, res)
	}
	again := s.RegisterClient(a.ID, withToken(md, reg))
	if again.ClientID != reg.ClientID {
		t.Fatal("re-registration made a new client")
	}
	if i, x, in, res := granted(); i || x || in || res {
		t.Errorf("a re-registration kept grants: impersonation %t, exchange any %t, introspect any %t, resources %t", i, x, in, res)
	}
}

// --require-approval: a re-registration returns an approved client to
// pending when it widens it, renames it, or comes without the registration
// access token (the new secret may go to someone else); the same metadata
// with the token keeps it approved.
func TestReregistrationReapproval(t *testing.T) {
	o := generousRates
	o.RequireApproval = true
	s := ststest.Start(t, o)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	registry := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
	approve := func(id string) {
		t.Helper()
		if _, _, err := registry.SetStatus(context.Background(), "operator:test", id, store.ClientActive); err != nil {
			t.Fatal(err)
		}
	}
	md := device("02:00:00:00:00:01")
	reg := s.RegisterClient(a.ID, md)
	approve(reg.ClientID)

	same := s.RegisterClient(a.ID, withToken(md, reg))
	if same.Status != "active" {
		t.Errorf("the same metadata with the token: %s, want active", same.Status)
	}
	renamed := map[string]any{}
	for k, v := range md {
		renamed[k] = v
	}
	renamed["client_name"] = "not the radio you approved"
	r := s.RegisterClient(a.ID, withToken(renamed, same))
	if r.Status != "pending" {
		t.Errorf("renamed: %s, want pending", r.Status)
	}
	approve(reg.ClientID)
	byIAT := reregister(s, a.ID, md)
	if byIAT.ClientID != reg.ClientID || byIAT.Status != "pending" {
		t.Errorf("re-registered by an IAT alone: %s %s, want %s pending", byIAT.ClientID, byIAT.Status, reg.ClientID)
	}
	s.ExpireClientCache()
	wantError(t, tokenFor(s, byIAT.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
}

// --registration-token-ttl at the RFC 7592 endpoint: the token works until
// it expires, then is 401 invalid_token; its expiry is in the response;
// rotating the secret renews it.
func TestRegistrationTokenExpires(t *testing.T) {
	o := generousRates
	o.RegistrationTokenTTL = time.Hour
	s := ststest.Start(t, o)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, baseMetadata())
	exp, _ := reg.Metadata["registration_access_token_expires_at"].(float64)
	if want := s.Clock.Now().Add(time.Hour).Unix(); int64(exp) < want-60 || int64(exp) > want {
		t.Errorf("registration_access_token_expires_at %v, want about %d", reg.Metadata["registration_access_token_expires_at"], want)
	}
	s.Clock.Advance(59 * time.Minute)
	md := update(reg, baseMetadata())
	md["rotate_secret"] = true
	r := s.Manage(http.MethodPut, reg, md)
	if r.Status != http.StatusOK {
		t.Fatalf("rotation before expiry: %d %s", r.Status, r.Body)
	}
	renewed := r.Registration()
	s.Clock.Advance(2 * time.Minute)
	wantInvalidToken(t, s.Manage(http.MethodGet, reg, nil))
	if r := s.Manage(http.MethodGet, renewed, nil); r.Status != http.StatusOK {
		t.Fatalf("the renewed token: %d %s", r.Status, r.Body)
	}
	s.Clock.Advance(time.Hour)
	wantInvalidToken(t, s.Manage(http.MethodGet, renewed, nil))
	wantInvalidToken(t, s.Manage(http.MethodPut, renewed, update(renewed, baseMetadata())))
	wantInvalidToken(t, s.Manage(http.MethodDelete, renewed, nil))
	if _, err := s.Store.GetClient(context.Background(), reg.ClientID); err != nil {
		t.Errorf("an expired token deleted the client: %v", err)
	}
}

// An operator's secret rotation (CLI, portal) replaces the registration
// access token: the old one is refused, the new one works.
func TestOperatorRotationReplacesRegistrationToken(t *testing.T) {
	s := ststest.Start(t, generousRates)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, baseMetadata())
	registry := &clients.Registry{Store: s.Store, Hasher: s.Hasher, Now: time.Now}
	_, secret, rat, err := registry.RotateSecret(context.Background(), "cli", reg.ClientID, 0)
	if err != nil || secret == "" || rat == "" {
		t.Fatalf("rotate: %q %q %v", secret, rat, err)
	}
	wantInvalidToken(t, s.Manage(http.MethodGet, reg, nil))
	wantWorks(t, s, &ststest.Registration{ClientID: reg.ClientID, ClientSecret: secret,
		RegistrationAccessToken: rat, RegistrationClientURI: reg.RegistrationClientURI})
}

// The address limit counts requests without a valid token only: junk from
// an address does not stop a valid IAT or registration access token from
// it, and junk beyond the limit is 429.
func TestAddressLimitCountsFailures(t *testing.T) {
	s := ststest.Start(t, ststest.Options{PerAddressPerMinute: 5, PerAccountPerMinute: 100})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, map[string]any{"client_name": "x"})
	for i := range 5 {
		wantInvalidToken(t, s.Register("junk", map[string]any{}))
		_ = i
	}
	wantError(t, s.Register("junk", map[string]any{}), http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
	wantError(t, s.Manage(http.MethodGet, &ststest.Registration{RegistrationClientURI: reg.RegistrationClientURI, RegistrationAccessToken: "junk"}, nil),
		http.StatusTooManyRequests, oauth.ErrTemporarilyUnavail)
	for i := range 10 {
		if r := s.Register(s.IAT(a.ID, nil), map[string]any{}); r.Status != http.StatusCreated {
			t.Fatalf("valid IAT %d after junk: %d %s", i, r.Status, r.Body)
		}
	}
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusOK {
		t.Errorf("valid registration access token after junk: %d %s", r.Status, r.Body)
	}
}

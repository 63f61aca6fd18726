package register_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// registered starts a server and registers one client.
func registered(t *testing.T, o ststest.Options, md map[string]any) (*ststest.STS, *ststest.Account, *ststest.Registration) {
	t.Helper()
	s := ststest.Start(t, o)
	a := s.NewAccount(store.AccountIndividual, "Alice")
	return s, a, s.RegisterClient(a.ID, md)
}

// baseMetadata is what the update tests register.
func baseMetadata() map[string]any {
	return map[string]any{
		"client_name": "gateway", "scope": "read write", "contacts": []string{"ops@example.com"},
		"audiences": []string{"https://a.example.com"}, "software_id": "gw", "software_version": "1",
	}
}

// update is the body of an RFC 7592 update: the metadata with client_id.
func update(reg *ststest.Registration, md map[string]any) map[string]any {
	out := map[string]any{"client_id": reg.ClientID}
	for k, v := range md {
		out[k] = v
	}
	return out
}

// RFC 7592 §3: the client information response carries
// registration_access_token and registration_client_uri (both REQUIRED).
func TestRFC7592_3_RegistrationAccessTokenAndClientURI(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, map[string]any{"client_name": "x"})
	if reg.RegistrationAccessToken == "" || !strings.HasPrefix(reg.RegistrationAccessToken, register.RegistrationTokenPrefix) {
		t.Errorf("registration_access_token %q", reg.RegistrationAccessToken)
	}
	if want := s.URL + register.Path + "/" + url.PathEscape(reg.ClientID); reg.RegistrationClientURI != want {
		t.Errorf("registration_client_uri %q, want %q", reg.RegistrationClientURI, want)
	}
	c, _ := s.Store.GetClient(context.Background(), reg.ClientID)
	if len(c.RegistrationTokenHash) != 32 || strings.Contains(string(c.RegistrationTokenHash), reg.RegistrationAccessToken) {
		t.Errorf("stored registration token hash %x", c.RegistrationTokenHash)
	}
}

// RFC 7592 §2.1: GET on the client configuration endpoint with the
// registration access token returns the client information response.
func TestRFC7592_2_1_Read(t *testing.T) {
	s, a, reg := registered(t, ststest.Options{}, baseMetadata())
	r := s.Manage(http.MethodGet, reg, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("read: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	got := r.Registration()
	if got.ClientID != reg.ClientID || got.RegistrationAccessToken != reg.RegistrationAccessToken ||
		got.RegistrationClientURI != reg.RegistrationClientURI || got.ClientIDIssuedAt != reg.ClientIDIssuedAt {
		t.Errorf("read %+v, registered %+v", got, reg)
	}
	// Only the secret's hash is stored, so it cannot be returned.
	if _, ok := got.Metadata["client_secret"]; ok {
		t.Error("client_secret returned by a read")
	}
	for _, k := range []string{"client_name", "scope", "contacts", "audiences", "software_id", "software_version", "grant_types", "token_endpoint_auth_method"} {
		if !equalJSONValue(got.Metadata[k], reg.Metadata[k]) {
			t.Errorf("%s: read %v, registered %v", k, got.Metadata[k], reg.Metadata[k])
		}
	}
	if got.Metadata["account_id"] != a.ID {
		t.Errorf("account_id %v", got.Metadata["account_id"])
	}
}

func equalJSONValue(a, b any) bool {
	la, aok := a.([]any)
	lb, bok := b.([]any)
	if aok && bok {
		return slices.EqualFunc(la, lb, func(x, y any) bool { return x == y })
	}
	return a == b
}

// RFC 7592 §2: "If the registration access token used to make this request
// is not valid, the server MUST respond with an error as described in
// OAuth 2.0 Bearer Token Usage [RFC6750]"; §2.1, §2.2, §2.3: a client that
// does not exist is 401 too.
func TestRFC7592_2_InvalidRegistrationAccessToken(t *testing.T) {
	s, a, reg := registered(t, ststest.Options{}, map[string]any{"client_name": "x"})
	other := s.RegisterClient(a.ID, map[string]any{"client_name": "y"})
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			var body any
			if method == http.MethodPut {
				body = update(reg, map[string]any{"client_name": "z"})
			}
			for name, tok := range map[string]string{
				"wrong token":           reg.RegistrationAccessToken + "x",
				"another client's":      other.RegistrationAccessToken,
				"an initial access one": s.IAT(a.ID, nil),
				"the client secret":     reg.ClientSecret,
			} {
				t.Run(name, func(t *testing.T) { wantInvalidToken(t, s.SendJSON(method, reg.RegistrationClientURI, tok, body)) })
			}
			// No token: RFC 6750 §3.1, a challenge without error code.
			r := s.SendJSON(method, reg.RegistrationClientURI, "", body)
			if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != `Bearer realm="Key Bridge STS"` {
				t.Errorf("no token: %d %q", r.Status, r.Header.Get("WWW-Authenticate"))
			}
			// An unknown client looks the same as a wrong token.
			wantInvalidToken(t, s.SendJSON(method, s.URL+register.Path+"/nosuchclient", reg.RegistrationAccessToken, body))
		})
	}
	// Nothing changed.
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusOK || r.JSON()["client_name"] != "x" {
		t.Errorf("after refused requests: %d %s", r.Status, r.Body)
	}
	r := s.SendJSON(http.MethodPost, reg.RegistrationClientURI, reg.RegistrationAccessToken, map[string]any{})
	if r.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST to the client configuration endpoint: %d", r.Status)
	}
}

// RFC 7592 §2.2: "Valid values of client metadata fields in this request
// MUST replace, not augment, the values previously associated with this
// client. Omitted fields MUST be treated as null or empty values by the
// server, indicating the client's request to delete them".
func TestRFC7592_2_2_UpdateReplacesMetadata(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	r := s.Manage(http.MethodPut, reg, update(reg, map[string]any{
		"client_name": "gateway 2", "audiences": []string{"https://b.example.com"}, "software_id": "gw",
	}))
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	m := r.JSON()
	if m["client_name"] != "gateway 2" || !slices.Equal(strList(m["audiences"]), []string{"https://b.example.com"}) {
		t.Errorf("updated values: %v", m)
	}
	for _, k := range []string{"scope", "contacts", "software_version"} {
		if _, ok := m[k]; ok {
			t.Errorf("omitted %s kept: %v", k, m[k])
		}
	}
	if _, ok := m["client_secret"]; ok {
		t.Error("an update without rotate_secret returned a secret")
	}
	// The registration access token and the secret are unchanged.
	if m["registration_access_token"] != reg.RegistrationAccessToken {
		t.Error("the registration access token changed")
	}
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusOK {
		t.Errorf("the secret stopped working: %d %s", r.Status, r.Body)
	}
	c, _ := s.Store.GetClient(context.Background(), reg.ClientID)
	if len(c.Scopes) != 0 || c.Name != "gateway 2" || c.SoftwareVersion != "" {
		t.Errorf("stored after update: %+v", c)
	}
	// What a read returns is what the update returned.
	if got := s.Manage(http.MethodGet, reg, nil).JSON(); got["client_name"] != "gateway 2" {
		t.Errorf("read after update: %v", got)
	}
}

// RFC 7592 §2.2: "The client MUST include its client_id field in the
// request, and it MUST be the same as its currently issued client
// identifier."
func TestRFC7592_2_2_UpdateClientIDMustMatch(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	md := baseMetadata()
	md["client_name"] = "changed"
	wantError(t, s.Manage(http.MethodPut, reg, md), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	md["client_id"] = "someone-else"
	wantError(t, s.Manage(http.MethodPut, reg, md), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	if got := s.Manage(http.MethodGet, reg, nil).JSON(); got["client_name"] != "gateway" {
		t.Errorf("a refused update changed the client: %v", got)
	}
}

// RFC 7592 §2.2: the request "MUST NOT include the
// registration_access_token, registration_client_uri,
// client_secret_expires_at, or client_id_issued_at fields".
func TestRFC7592_2_2_UpdateMustNotIncludeServerFields(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	for _, k := range []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"} {
		md := update(reg, baseMetadata())
		md[k] = reg.Metadata[k]
		wantError(t, s.Manage(http.MethodPut, reg, md), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	}
}

// RFC 7592 §2.2: "If the client includes the client_secret field in the
// request, the value of this field MUST match the currently issued client
// secret for that client. The client MUST NOT be allowed to overwrite its
// existing client secret with its own chosen value."
func TestRFC7592_2_2_UpdateClientSecretMustMatch(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	md := update(reg, baseMetadata())
	md["client_secret"] = "my-own-chosen-secret"
	wantError(t, s.Manage(http.MethodPut, reg, md), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	chosen := &ststest.Client{Client: &store.Client{ID: reg.ClientID}, Secret: "my-own-chosen-secret"}
	wantError(t, tokenFor(s, chosen), http.StatusUnauthorized, oauth.ErrInvalidClient)

	md["client_secret"] = reg.ClientSecret
	md["client_name"] = "renamed"
	r := s.Manage(http.MethodPut, reg, md)
	if r.Status != http.StatusOK || r.JSON()["client_name"] != "renamed" {
		t.Fatalf("update with the current secret: %d %s", r.Status, r.Body)
	}
	if r := tokenFor(s, reg.Client()); r.Status != http.StatusOK {
		t.Errorf("secret after update: %d %s", r.Status, r.Body)
	}
}

// RFC 7592 §2.2: the server MAY issue a new client secret in an update
// (here on "rotate_secret": true); "the client MUST immediately discard
// its previous client secret", which the server refuses from then on.
func TestRFC7592_2_2_RotateSecret(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	md := update(reg, baseMetadata())
	md["rotate_secret"] = true
	r := s.Manage(http.MethodPut, reg, md)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	got := r.Registration()
	if got.ClientSecret == "" || got.ClientSecret == reg.ClientSecret {
		t.Fatalf("rotation returned secret %q", got.ClientSecret)
	}
	// §3: the server "MAY issue a new registration access token": a new
	// secret comes with a new token, whose lifetime starts afresh.
	if got.RegistrationAccessToken == "" || got.RegistrationAccessToken == reg.RegistrationAccessToken {
		t.Error("the registration access token was not replaced on secret rotation")
	}
	wantInvalidToken(t, s.Manage(http.MethodGet, reg, nil))
	if r := s.Manage(http.MethodGet, got, nil); r.Status != http.StatusOK {
		t.Errorf("the new registration access token: %d %s", r.Status, r.Body)
	}
	wantError(t, tokenFor(s, reg.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	if r := tokenFor(s, got.Client()); r.Status != http.StatusOK {
		t.Errorf("new secret: %d %s", r.Status, r.Body)
	}
	md["rotate_secret"] = "yes"
	wantError(t, s.Manage(http.MethodPut, got, md), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
}

// RFC 7592 §2.2: "If the client attempts to set an invalid metadata field
// and the authorization server does not set a default value, the
// authorization server responds with an error as described in [RFC7591]."
func TestRFC7592_2_2_UpdateInvalidMetadata(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	for _, md := range []map[string]any{
		{"grant_types": []string{"password"}},
		{"audiences": []string{"https://a.example.com/#frag"}},
		{"token_endpoint_auth_method": "none"},
		{"allow_impersonation": "true"},
	} {
		wantError(t, s.Manage(http.MethodPut, reg, update(reg, md)), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	}
	if got := s.Manage(http.MethodGet, reg, nil).JSON(); got["client_name"] != "gateway" || got["scope"] != "read write" {
		t.Errorf("a refused update changed the client: %v", got)
	}
}

// RFC 7592 §2.2: "If the client is not allowed to update its records, the
// server MUST respond with HTTP 403 Forbidden": here, when its account is
// suspended. Reading stays possible.
func TestRFC7592_2_2_UpdateForbiddenForSuspendedAccount(t *testing.T) {
	s, a, reg := registered(t, ststest.Options{}, baseMetadata())
	if _, err := s.Accounts.SetStatus(context.Background(), a.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	wantError(t, s.Manage(http.MethodPut, reg, update(reg, baseMetadata())), http.StatusForbidden, oauth.ErrAccessDenied)
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusOK {
		t.Errorf("read: %d", r.Status)
	}
}

// RFC 7592 §2.3: a successful delete is 204 No Content, after which the
// client id, secret and registration access token no longer work.
func TestRFC7592_2_3_Delete(t *testing.T) {
	s, _, reg := registered(t, ststest.Options{}, baseMetadata())
	r := s.Manage(http.MethodDelete, reg, nil)
	if r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	wantInvalidToken(t, s.Manage(http.MethodGet, reg, nil))
	wantInvalidToken(t, s.Manage(http.MethodDelete, reg, nil))
	wantError(t, tokenFor(s, reg.Client()), http.StatusUnauthorized, oauth.ErrInvalidClient)
	if _, err := s.Store.GetClient(context.Background(), reg.ClientID); err == nil {
		t.Error("the client is still stored")
	}
}

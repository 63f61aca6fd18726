package register_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// RFC 7591 §3.1: "the client sends an HTTP POST to the client registration
// endpoint with a content type of application/json", the metadata as
// top-level members of a JSON object.
func TestRFC7591_3_1_RegistrationRequestIsJSONPost(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, nil)

	req, _ := http.NewRequest(http.MethodPost, s.URL+register.Path, strings.NewReader("client_name=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+iat)
	wantError(t, s.Do(req), http.StatusUnsupportedMediaType, oauth.ErrInvalidRequest)

	for _, body := range []string{`["client_name"]`, `"x"`, `{"client_name":`, `{} {}`} {
		wantError(t, s.Register(iat, body), http.StatusBadRequest, oauth.ErrInvalidRequest)
	}
	r := s.SendJSON(http.MethodGet, s.URL+register.Path, iat, nil)
	if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != http.MethodPost {
		t.Errorf("GET %s: %d Allow %q", register.Path, r.Status, r.Header.Get("Allow"))
	}
	// None of these spent the IAT.
	if r := s.Register(iat, map[string]any{"client_name": "x"}); r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
}

// RFC 7591 §3.2.1: 201 Created, application/json, with client_id,
// client_secret, client_id_issued_at and client_secret_expires_at (numbers),
// and "all registered metadata about the client, including any fields
// provisioned by the authorization server itself".
func TestRFC7591_3_2_1_ClientInformationResponse(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	jwk := newPublisher(t, "x").set
	req := map[string]any{
		"client_name":                "Radio 7",
		"grant_types":                []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange, oauth.GrantTypeRefreshToken},
		"token_endpoint_auth_method": "client_secret_post",
		"scope":                      "read write",
		"software_id":                "4NRB1-0XZABZI9E6-5SM3R",
		"software_version":           "2.1",
		"contacts":                   []string{"ops@example.com"},
		"jwks":                       jwk,
		"client_uri":                 "https://radio.example.com/",
		"hardware_address":           "00:1a:2b:3c:4d:5e",
		"extended_parameters":        map[string]string{"fcc_id": "2AS3K-1", "site": "A"},
		"audiences":                  []string{"https://backend.example.com/api", "sas"},
		"token_format":               "opaque",
		"allow_impersonation":        false,
		"access_token_ttl":           600,
		"refresh_token_ttl":          7200,
	}
	r := s.Register(s.IAT(a.ID, nil), req)
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Pragma") != "no-cache" {
		t.Errorf("the response carries a secret but may be cached: %v", r.Header)
	}
	m := r.JSON()
	for _, k := range []string{"client_id", "client_secret"} {
		if v, _ := m[k].(string); v == "" {
			t.Errorf("%s missing or not a string: %v", k, m[k])
		}
	}
	for _, k := range []string{"client_id_issued_at", "client_secret_expires_at"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("%s is not a number: %#v", k, m[k])
		}
	}
	if m["client_secret_expires_at"] != 0.0 {
		t.Errorf("client_secret_expires_at %v, want 0 (no expiry)", m["client_secret_expires_at"])
	}
	// Every registered value comes back.
	want := map[string]any{}
	b, _ := json.Marshal(req)
	json.Unmarshal(b, &want)
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if m["status"] != "active" || m["account_id"] != a.ID {
		t.Errorf("status %v account_id %v", m["status"], m["account_id"])
	}
	reg := r.Registration()
	if len(reg.ClientID) != 26 {
		t.Errorf("client_id %q is not a random id", reg.ClientID)
	}
	// The client is real: it gets a token with its registered method.
	c := reg.Client()
	r = postAuth(s, c, "audience", "sas", "scope", "read")
	if r.Status != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", r.Status, r.Body)
	}
	if tok := r.Token(); !strings.HasPrefix(tok.AccessToken, "sts_at_") || tok.ExpiresIn != 600 {
		t.Errorf("token %+v: want an opaque token living 600 s", tok)
	}
	stored, err := s.Store.GetClient(t.Context(), reg.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.AccountID != a.ID || stored.TokenFormat != "opaque" || stored.AllowImpersonation ||
		!slices.Equal(stored.Scopes, []string{"read", "write"}) || stored.HardwareAddress != "00:1a:2b:3c:4d:5e" {
		t.Errorf("stored %+v", stored)
	}
	if strings.Contains(string(stored.Metadata), reg.ClientSecret) || slices.Equal(stored.SecretHash, []byte(reg.ClientSecret)) {
		t.Error("the secret is stored in the clear")
	}
}

// RFC 7591 §3.2.1: the server returns the values it provisioned itself:
// here the defaults of grant_types and token_endpoint_auth_method (§2:
// "If unspecified or omitted, the default is client_secret_basic").
func TestRFC7591_3_2_1_ServerProvisionedValuesReturned(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountOrganization, "Org")
	reg := s.RegisterClient(a.ID, map[string]any{})
	m := reg.Metadata
	if got := strList(m["grant_types"]); !slices.Equal(got, []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange}) {
		t.Errorf("grant_types %v", got)
	}
	if m["token_endpoint_auth_method"] != oauth.AuthMethodClientSecretBasic {
		t.Errorf("token_endpoint_auth_method %v", m["token_endpoint_auth_method"])
	}
	if m["client_name"] != register.DefaultName || m["token_format"] != "jwt" || m["allow_impersonation"] != false {
		t.Errorf("defaults: %v", m)
	}
	if _, ok := m["audiences"].([]any); !ok {
		t.Errorf("audiences %#v, want an array", m["audiences"])
	}
}

// RFC 7591 §2: client_secret_basic is the default method, and a client
// registered with a method authenticates only with it (the token endpoint
// enforces the registration).
func TestRFC7591_2_TokenEndpointAuthMethodEnforced(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	basic := s.RegisterClient(a.ID, map[string]any{"client_name": "basic"}).Client()
	post := s.RegisterClient(a.ID, map[string]any{"client_name": "post", "token_endpoint_auth_method": "client_secret_post"}).Client()
	if r := tokenFor(s, basic); r.Status != http.StatusOK {
		t.Errorf("basic client with Basic: %d %s", r.Status, r.Body)
	}
	r := postAuth(s, basic)
	wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	if r := postAuth(s, post); r.Status != http.StatusOK {
		t.Errorf("post client with client_secret_post: %d %s", r.Status, r.Body)
	}
	wantError(t, tokenFor(s, post), http.StatusUnauthorized, oauth.ErrInvalidClient)
	// Introspection uses the same authentication.
	tok := s.ClientCredentials(basic, nil)
	r = s.PostForm("/token/oauth2/introspect", nil, map[string][]string{"token": {tok}, "client_id": {basic.ID}, "client_secret": {basic.Secret}})
	wantError(t, r, http.StatusUnauthorized, oauth.ErrInvalidClient)
}

// RFC 7591 §2: "The authorization server MUST ignore any client metadata
// sent by the client that it does not understand (for instance, by
// silently removing unknown metadata from the client's registration record
// during processing)."
func TestRFC7591_2_UnknownMetadataIgnored(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, map[string]any{
		"client_name": "x", "frobnicate": true, "x-vendor": map[string]any{"a": 1},
		// Server-set members in a request are ignored too: a client
		// cannot choose its id or secret.
		"client_id": "mine", "client_secret": "chosen-secret", "client_id_issued_at": 1, "status": "active",
	})
	for _, k := range []string{"frobnicate", "x-vendor"} {
		if _, ok := reg.Metadata[k]; ok {
			t.Errorf("unknown member %s echoed", k)
		}
	}
	if reg.ClientID == "mine" || reg.ClientSecret == "chosen-secret" {
		t.Error("the client chose its id or secret")
	}
	c, _ := s.Store.GetClient(t.Context(), reg.ClientID)
	if strings.Contains(string(c.Metadata), "frobnicate") {
		t.Errorf("unknown member stored: %s", c.Metadata)
	}
}

// RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present
// in the same request or response."
func TestRFC7591_2_JWKSAndJWKSURIExclusive(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	r := s.Register(s.IAT(a.ID, nil), map[string]any{
		"client_name": "x", "jwks_uri": "https://x.example.com/jwks.json", "jwks": newPublisher(t, "x").set,
	})
	wantError(t, r, http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
	reg := s.RegisterClient(a.ID, map[string]any{"client_name": "y", "jwks_uri": "https://x.example.com/jwks.json"})
	if _, ok := reg.Metadata["jwks"]; ok || reg.Metadata["jwks_uri"] != "https://x.example.com/jwks.json" {
		t.Errorf("jwks_uri registration: %v", reg.Metadata)
	}
}

// RFC 7591 §2.2: human-readable values may carry a BCP 47 language tag;
// they are registered and returned as sent.
func TestRFC7591_2_2_LanguageTaggedMetadata(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(a.ID, map[string]any{
		"client_name": "My Example", "client_name#ja-Jpan-JP": "クライアント名",
		"tos_uri#de": "https://example.com/agb",
	})
	if reg.Metadata["client_name#ja-Jpan-JP"] != "クライアント名" || reg.Metadata["tos_uri#de"] != "https://example.com/agb" {
		t.Errorf("tagged values: %v", reg.Metadata)
	}
	wantError(t, s.Register(s.IAT(a.ID, nil), map[string]any{"client_name#fr": 3}), http.StatusBadRequest, oauth.ErrInvalidClientMetadata)
}

// RFC 7591 §2.3: "If the software statement is valid and signed by an
// acceptable authority ..., the values of client metadata fields present
// in the software statement MUST take precedence over those in the plain
// JSON request."
func TestRFC7591_2_3_SoftwareStatementTakesPrecedence(t *testing.T) {
	p := newPublisher(t, "https://publisher.example.com")
	s := ststest.Start(t, ststest.Options{Publishers: map[string]*jose.JSONWebKeySet{p.iss: p.set}})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	ss := p.statement(t, "ec-1", map[string]any{
		"software_id": "radio-firmware", "client_name": "Certified Radio", "audiences": []string{"https://sas.example.com"},
		"scope": "spectrum",
	})
	reg := s.RegisterClient(a.ID, map[string]any{
		"software_statement": ss, "client_name": "whatever I like", "software_id": "mine",
		"audiences": []string{"https://anything.example.com"}, "software_version": "1.0",
	})
	m := reg.Metadata
	if m["client_name"] != "Certified Radio" || m["software_id"] != "radio-firmware" || m["scope"] != "spectrum" ||
		!slices.Equal(strList(m["audiences"]), []string{"https://sas.example.com"}) {
		t.Errorf("the request's values won over the statement's: %v", m)
	}
	if m["software_version"] != "1.0" {
		t.Errorf("a value the statement does not set was lost: %v", m["software_version"])
	}
	// RFC 7591 §3.2.1: "If a software statement was used as part of the
	// registration, its value MUST be returned unmodified in the response".
	if m["software_statement"] != ss {
		t.Errorf("software_statement returned as %v", m["software_statement"])
	}
	// An EdDSA-signed statement is accepted too.
	ss2 := p.statement(t, "ed-1", map[string]any{"software_id": "other"})
	if r := s.Register(s.IAT(a.ID, nil), map[string]any{"software_statement": ss2}); r.Status != http.StatusCreated {
		t.Errorf("EdDSA statement: %d %s", r.Status, r.Body)
	}
}

// RFC 7591 §3.2.2: a registration error is 400 with a JSON object holding
// error (one of the registered codes) and optionally error_description.
func TestRFC7591_3_2_2_ErrorResponse(t *testing.T) {
	p := newPublisher(t, "https://publisher.example.com")
	s := ststest.Start(t, ststest.Options{Publishers: map[string]*jose.JSONWebKeySet{p.iss: p.set}})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	iat := s.IAT(a.ID, nil)
	other := newPublisher(t, "https://other.example.com")
	for name, tc := range map[string]struct {
		body map[string]any
		code oauth.ErrorCode
	}{
		"bad metadata":     {map[string]any{"grant_types": []string{"authorization_code"}}, oauth.ErrInvalidClientMetadata},
		"bad statement":    {map[string]any{"software_statement": "not.a.jws"}, oauth.ErrInvalidSoftwareStatement},
		"unknown issuer":   {map[string]any{"software_statement": other.statement(t, "ec-1", nil)}, oauth.ErrUnapprovedSoftwareStatement},
		"statement no iss": {map[string]any{"software_statement": p.statement(t, "ec-1", map[string]any{"iss": nil})}, oauth.ErrInvalidSoftwareStatement},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.Register(iat, tc.body)
			wantError(t, r, http.StatusBadRequest, tc.code)
			var m map[string]any
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatal(err)
			}
			for k := range m {
				if k != "error" && k != "error_description" {
					t.Errorf("unexpected member %q in %s", k, r.Body)
				}
			}
		})
	}
}

// RFC 7591 §3 and §3.2.2: the endpoint is a protected resource; a missing
// or invalid initial access token is answered per RFC 6750 §3.1.
func TestRFC7591_3_InitialAccessTokenRequired(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	a := s.NewAccount(store.AccountIndividual, "Alice")
	body := map[string]any{"client_name": "x"}

	r := s.Register("", body)
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("no IAT: %d %s", r.Status, r.Body)
	}
	// RFC 6750 §3.1: without any credentials, the challenge carries no
	// error code.
	if ch := r.Header.Get("WWW-Authenticate"); ch != `Bearer realm="Key Bridge STS"` {
		t.Errorf("WWW-Authenticate %q", ch)
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+register.Path, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Basic "+a.Secret)
	if r := s.Do(req); r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("Basic credentials: %d %v", r.Status, r.Header)
	}
	wantInvalidToken(t, s.Register("garbage", body))
	wantInvalidToken(t, s.Register(s.IAT(a.ID, nil)+"x", body))
	// A registration access token is not an initial access token.
	reg := s.RegisterClient(a.ID, body)
	wantInvalidToken(t, s.Register(reg.RegistrationAccessToken, body))
}

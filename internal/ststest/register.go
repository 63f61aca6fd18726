package ststest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/keybridge/sts/internal/endpoint/register"
	"github.com/keybridge/sts/internal/store"
)

// Account is an account and, for an individual one, its shared secret.
type Account struct {
	*store.Account
	Secret string
}

// NewAccount creates an active account of kind with no bounds; an
// organization gets a certificate issued by the server, so that IAT can
// sign for it.
func (s *STS) NewAccount(kind store.AccountKind, name string) *Account {
	s.T.Helper()
	ctx := context.Background()
	a, secret, err := s.Accounts.Create(ctx, kind, name, nil, nil)
	if err != nil {
		s.T.Fatal(err)
	}
	if kind == store.AccountOrganization {
		if _, err := s.Accounts.IssueCertificate(ctx, a.ID, "", 0); err != nil {
			s.T.Fatal(err)
		}
	}
	return &Account{Account: a, Secret: secret}
}

// IAT issues an initial access token for the account (lifetime: the
// maximum) with the extra claims, if any.
func (s *STS) IAT(accountID string, extra map[string]any) string {
	s.T.Helper()
	t, err := s.Accounts.IssueIAT(context.Background(), accountID, 0, extra)
	if err != nil {
		s.T.Fatal(err)
	}
	return t
}

// SendJSON sends method url with body encoded as JSON (a []byte or string
// is sent as it is; nil sends no body) and Authorization: Bearer token
// (none when token is empty).
func (s *STS) SendJSON(method, url, token string, body any) *Response {
	s.T.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			s.T.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(b))
	if err != nil {
		s.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return s.Do(req)
}

// Register posts client metadata to the registration endpoint with iat.
func (s *STS) Register(iat string, metadata any) *Response {
	s.T.Helper()
	return s.SendJSON(http.MethodPost, s.URL+register.Path, iat, metadata)
}

// Registration is a successful registration response (RFC 7591 §3.2.1,
// RFC 7592 §3).
type Registration struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret"`
	ClientIDIssuedAt        int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt   int64  `json:"client_secret_expires_at"`
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	Status                  string `json:"status"`
	// Metadata is the whole response.
	Metadata map[string]any `json:"-"`
}

// Registration decodes a registration (or RFC 7592 read/update) response.
func (r *Response) Registration() *Registration {
	var reg Registration
	_ = json.Unmarshal(r.Body, &reg)
	reg.Metadata = r.JSON()
	return &reg
}

// Client is the registered client with its secret, for the token endpoint.
func (reg *Registration) Client() *Client {
	return &Client{Client: &store.Client{ID: reg.ClientID}, Secret: reg.ClientSecret}
}

// RegisterClient registers metadata with a fresh IAT of the account and
// fails the test unless the answer is 201.
func (s *STS) RegisterClient(accountID string, metadata any) *Registration {
	s.T.Helper()
	r := s.Register(s.IAT(accountID, nil), metadata)
	if r.Status != http.StatusCreated {
		s.T.Fatalf("register: %d %s", r.Status, r.Body)
	}
	return r.Registration()
}

// Manage sends an RFC 7592 request to the client configuration endpoint
// of reg with its registration access token.
func (s *STS) Manage(method string, reg *Registration, body any) *Response {
	s.T.Helper()
	return s.SendJSON(method, reg.RegistrationClientURI, reg.RegistrationAccessToken, body)
}

// ExpireClientCache moves the clock past the server's client cache, so
// that a change made to a client outside the server (through s.Store, the
// CLI) is seen by the token endpoint.
func (s *STS) ExpireClientCache() { s.Clock.Advance(3 * time.Second) }

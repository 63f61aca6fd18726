package clientauth

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// fakeClients holds clients in a map.
type fakeClients map[string]*store.Client

func (f fakeClients) GetClient(_ context.Context, id string) (*store.Client, error) {
	if c, ok := f[id]; ok {
		return c, nil
	}
	return nil, store.ErrNotFound
}
func (f fakeClients) CreateClient(context.Context, *store.Client) error { return nil }
func (f fakeClients) ListClients(context.Context) ([]*store.Client, error) {
	return nil, nil
}
func (f fakeClients) ListAccountClients(context.Context, string) ([]*store.Client, error) {
	return nil, nil
}
func (f fakeClients) FindClientByIdentity(context.Context, string, string) (*store.Client, error) {
	return nil, store.ErrNotFound
}
func (f fakeClients) UpdateClient(context.Context, string, func(*store.Client) error) (*store.Client, error) {
	return nil, nil
}
func (f fakeClients) DeleteClient(context.Context, string) error { return nil }

// RFC 7591 §2: a client registered with a token_endpoint_auth_method
// authenticates only with it; a client without one may use either.
func TestRegisteredAuthMethod(t *testing.T) {
	h := NewHasher([]byte("key"))
	cs := fakeClients{}
	for _, m := range []string{"", oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost} {
		cs["c-"+m] = &store.Client{ID: "c-" + m, SecretHash: h.Hash("s3cret"), Status: store.ClientActive, AuthMethod: m}
	}
	a := &Authenticator{Clients: cs, Hasher: h, Now: time.Now}
	for _, tc := range []struct {
		registered, used string
		ok               bool
	}{
		{"", oauth.AuthMethodClientSecretBasic, true},
		{"", oauth.AuthMethodClientSecretPost, true},
		{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretBasic, true},
		{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost, false},
		{oauth.AuthMethodClientSecretPost, oauth.AuthMethodClientSecretPost, true},
		{oauth.AuthMethodClientSecretPost, oauth.AuthMethodClientSecretBasic, false},
	} {
		id := "c-" + tc.registered
		form := url.Values{"grant_type": {"client_credentials"}}
		r := httptest.NewRequest("POST", "/token/oauth2", strings.NewReader(""))
		if tc.used == oauth.AuthMethodClientSecretBasic {
			r.SetBasicAuth(id, "s3cret")
		} else {
			form.Set("client_id", id)
			form.Set("client_secret", "s3cret")
		}
		_, _, err := a.Authenticate(context.Background(), r, form)
		if (err == nil) != tc.ok {
			t.Errorf("registered %q, used %s: err %v", tc.registered, tc.used, err)
		}
		if err != nil && oauth.AsError(err).Code != oauth.ErrInvalidClient {
			t.Errorf("registered %q, used %s: %v, want invalid_client", tc.registered, tc.used, err)
		}
	}
}

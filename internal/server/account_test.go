package server_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// The clients of a suspended or closed account cannot authenticate; the
// server sees the change within its cache bound.
func TestSuspendedAccountClientsRefused(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	acct, _, err := s.Accounts.Create(ctx, store.AccountOrganization, "Radio Co", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CreateClient(func(c *store.Client) { c.AccountID = acct.ID })
	cc := url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}
	if r := s.PostForm(server.TokenPath, c, cc); r.Status != http.StatusOK {
		t.Fatalf("active account: %d %s", r.Status, r.Body)
	}
	if _, err := s.Accounts.SetStatus(ctx, acct.ID, store.AccountSuspended); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(3 * time.Second) // past the cache bound
	r := s.PostForm(server.TokenPath, c, cc)
	if r.Status != http.StatusUnauthorized || r.Error() != string(oauth.ErrInvalidClient) {
		t.Fatalf("suspended account: %d %s", r.Status, r.Body)
	}
	if _, err := s.Accounts.SetStatus(ctx, acct.ID, store.AccountActive); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(3 * time.Second)
	if r := s.PostForm(server.TokenPath, c, cc); r.Status != http.StatusOK {
		t.Fatalf("reactivated account: %d %s", r.Status, r.Body)
	}
}

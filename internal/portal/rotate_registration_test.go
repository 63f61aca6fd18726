package portal_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// Rotating the secret of a dynamically registered client in the portal
// replaces its RFC 7592 registration access token too: the new one is
// shown once beside the secret, the old one is refused.
func TestRotateReplacesRegistrationToken(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	acct := s.NewAccount(store.AccountIndividual, "Alice")
	reg := s.RegisterClient(acct.ID, map[string]any{"client_name": "radio"})
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	p.Get("/portal/clients/" + reg.ClientID)
	r := p.Post("/portal/clients/"+reg.ClientID+"/rotate", url.Values{"grace": {"0"}})
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d", r.Status)
	}
	rat := extractValue(t, r.Body, "registration-access-token")
	if rat == "" || rat == reg.RegistrationAccessToken {
		t.Fatalf("registration access token shown: %q", rat)
	}
	if r := s.Manage(http.MethodGet, reg, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("the old registration access token: %d", r.Status)
	}
	renewed := *reg
	renewed.RegistrationAccessToken = rat
	if r := s.Manage(http.MethodGet, &renewed, nil); r.Status != http.StatusOK {
		t.Errorf("the new registration access token: %d %s", r.Status, r.Body)
	}
}

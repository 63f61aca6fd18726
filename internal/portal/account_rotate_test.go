package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/account"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// TestRotateAccountSecret (issue 9, item 3 and portal item 7): an operator
// or the holder rotates an individual account's shared secret on its
// page; the new secret is shown once and works, the old one does not, the
// holders' sessions end (a holder rotating their own is signed out after
// seeing it), the change is audited; organizations have no such button.
func TestRotateAccountSecret(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	op := s.PortalSignIn("alice", s.CreateOperator("alice"))
	a, oldSecret, err := s.Accounts.Create(ctx, store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.Accounts.Create(ctx, store.AccountIndividual, "Globex", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := "/portal/accounts/" + a.ID + "/secret"
	holder := s.PortalSignIn(a.ID, oldSecret)

	// The button is on the account's page, for the operator and the holder.
	for who, p := range map[string]*ststest.PortalSession{"operator": op, "holder": holder} {
		if page := string(p.Get("/portal/accounts/" + a.ID).Body); !strings.Contains(page, `action="/portal/accounts/`+a.ID+`/secret"`) || !strings.Contains(page, `id="rotate-secret"`) {
			t.Errorf("%s: the account page has no rotate button", who)
		}
	}
	// Not without the CSRF token, not for another account's holder.
	if r := holder.Post(path, url.Values{"csrf": {"forged"}}); r.Status != http.StatusForbidden {
		t.Errorf("forged CSRF token: %d", r.Status)
	}
	if r := holder.Post("/portal/accounts/"+other.ID+"/secret", nil); r.Status != http.StatusNotFound {
		t.Errorf("another account's secret: %d", r.Status)
	}
	if _, err := s.Accounts.CheckSecret(ctx, a.ID, oldSecret); err != nil {
		t.Fatalf("a refused rotation changed the secret: %v", err)
	}

	// The operator rotates it: shown once, the holder is signed out.
	op.Get("/portal/accounts/" + a.ID)
	r := op.Post(path, nil)
	if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("operator rotates: %d\n%s", r.Status, r.Body)
	}
	secret := extractValue(t, r.Body, "account-secret")
	if secret == oldSecret || extractValue(t, r.Body, "account-id") != a.ID || !strings.Contains(string(r.Body), "hand it to the account holder") {
		t.Fatalf("operator's page: secret %q", secret)
	}
	if _, err := s.Accounts.CheckSecret(ctx, a.ID, secret); err != nil {
		t.Errorf("new secret: %v", err)
	}
	if _, err := s.Accounts.CheckSecret(ctx, a.ID, oldSecret); err == nil {
		t.Error("the old secret still works")
	}
	if r := holder.Get("/portal/clients"); r.Status != http.StatusSeeOther {
		t.Errorf("the holder's session survived the rotation: %d", r.Status)
	}
	if r := op.Get("/portal/clients"); r.Status != http.StatusOK {
		t.Errorf("the operator was signed out: %d", r.Status)
	}
	if r := s.NewPortalSession().SignIn(a.ID, oldSecret); r.Status != http.StatusUnauthorized {
		t.Errorf("sign-in with the old secret: %d", r.Status)
	}

	// The holder rotates their own: shown first, then signed out.
	holder = s.PortalSignIn(a.ID, secret)
	second := s.PortalSignIn(a.ID, secret)
	holder.Get("/portal/accounts/" + a.ID)
	r = holder.Post(path, nil)
	body := string(r.Body)
	if r.Status != http.StatusOK {
		t.Fatalf("holder rotates: %d\n%s", r.Status, body)
	}
	newSecret := extractValue(t, r.Body, "account-secret")
	if newSecret == secret || !strings.Contains(body, "You are signed out") || !strings.Contains(body, "sign in with your account ID and the new secret") ||
		strings.Contains(body, `action="/portal/signout"`) || !strings.Contains(body, `id="signin-again"`) {
		t.Errorf("holder's page:\n%s", body)
	}
	if c := r.Header.Get("Set-Cookie"); !strings.Contains(c, "sts_session=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("the session cookie is not cleared: %q", c)
	}
	for i, p := range []*ststest.PortalSession{holder, second} {
		if r := p.Get("/portal/clients"); r.Status != http.StatusSeeOther {
			t.Errorf("holder session %d survived: %d", i, r.Status)
		}
	}
	s.PortalSignIn(a.ID, newSecret)

	// Audited as the CLI audits it, naming who rotated.
	recs, err := s.ListAudit(ctx, store.AuditFilter{Action: account.ActionRotateSecret})
	if err != nil || len(recs) != 2 || recs[0].Subject != "account:"+a.ID || recs[1].Subject != "operator:alice" || recs[0].AccountID != a.ID {
		t.Fatalf("audit %+v %v", recs, err)
	}
	for _, rec := range recs {
		if strings.Contains(rec.Detail, secret) || strings.Contains(rec.Detail, newSecret) {
			t.Error("the audit record holds the secret")
		}
	}

	// An organization has no shared secret and no button.
	org, _, err := s.Accounts.Create(ctx, store.AccountOrganization, "Initech", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if page := string(op.Get("/portal/accounts/" + org.ID).Body); strings.Contains(page, "rotate-secret") {
		t.Error("an organization's page offers to rotate a shared secret")
	}
	if r := op.Post("/portal/accounts/"+org.ID+"/secret", nil); r.Status != http.StatusConflict {
		t.Errorf("organization: %d", r.Status)
	}
}

package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// TestOnePerLine (issue 9, portal item 5): "one per line" fields split on
// line breaks only; a line with a space is refused with a field error
// naming it, not split into two values; scopes stay space-separated (RFC
// 6749 §3.3).
func TestOnePerLine(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	form := func(id, auds, resources string) url.Values {
		return url.Values{"name": {id}, "client_id": {id}, "audiences": {auds}, "resources": {resources}, "scopes": {"api  read"},
			"grant_type": {oauth.GrantTypeClientCredentials}, "token_format": {"jwt"}}
	}
	// Browsers post a textarea's line breaks as CRLF; blank lines and
	// surrounding spaces are ignored.
	r := p.Post("/portal/clients/new", form("lines", " https://a.example/api \r\n\r\nbackend\r\n", "https://rs.example\r\n"))
	if r.Status != http.StatusOK {
		t.Fatalf("register: %d\n%s", r.Status, r.Body)
	}
	c, err := s.Store.GetClient(ctx, "lines")
	if err != nil || !slices.Equal(c.Audiences, []string{"https://a.example/api", "backend"}) ||
		!slices.Equal(c.Resources, []string{"https://rs.example"}) || !slices.Equal(c.Scopes, []string{"api", "read"}) {
		t.Fatalf("stored %+v %v", c, err)
	}

	for _, tc := range []struct{ name, auds, resources, field string }{
		{"audience", "https://a.example/api\nhttps://b.example other", "", "audiences-error"},
		{"resource", "", "https://rs.example extra", "resources-error"},
	} {
		r := p.Post("/portal/clients/new", form("spaced-"+tc.name, tc.auds, tc.resources))
		body := string(r.Body)
		if r.Status != http.StatusUnprocessableEntity || !regexp.MustCompile(`id="`+tc.field+`">[^<]*contains white space: put each `+tc.name+` on a line of its own`).MatchString(body) {
			t.Errorf("%s with a space: %d\n%s", tc.name, r.Status, body)
		}
		if _, err := s.Store.GetClient(ctx, "spaced-"+tc.name); err == nil {
			t.Errorf("%s with a space: the client was registered", tc.name)
		}
	}
	// Editing too.
	p.Get("/portal/clients/lines")
	r = p.Post("/portal/clients/lines", form("lines", "https://a.example/api https://b.example", ""))
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `id="audiences-error"`) {
		t.Errorf("edit with a space: %d", r.Status)
	}
	if c, _ := s.Store.GetClient(ctx, "lines"); len(c.Audiences) != 2 {
		t.Errorf("a refused edit changed the audiences: %v", c.Audiences)
	}

	// An account's limits: the same rule.
	p.Get("/portal/accounts")
	r = p.Post("/portal/accounts", url.Values{"kind": {"organization"}, "name": {"Globex"}, "audiences": {"https://a.example https://b.example"}, "scopes": {"api read"}})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "put each audience on a line of its own") {
		t.Errorf("account limits with a space: %d", r.Status)
	}
	r = p.Post("/portal/accounts", url.Values{"kind": {"organization"}, "name": {"Globex"}, "audiences": {"https://a.example\r\nhttps://b.example"}, "scopes": {"api read"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("account: %d\n%s", r.Status, r.Body)
	}
	as, _ := s.Store.ListAccounts(ctx)
	if len(as) != 1 || len(as[0].Audiences) != 2 || len(as[0].Scopes) != 2 {
		t.Errorf("account limits %+v", as)
	}

	// The hints say so.
	page := string(p.Get("/portal/clients/new").Body)
	if !strings.Contains(page, "One per line (a value holds no spaces)") || !strings.Contains(page, "Separated by spaces, as OAuth writes a scope list (RFC 6749 §3.3)") {
		t.Error("the form's hints do not say how values are separated")
	}
}

// TestOperatorGrantsGroup (issue 9, portal item 3): "Allow impersonation"
// is in the operator grants' own group with the resources, exchange-any
// and introspect-any fields, not under the access token format heading;
// account holders see none of them.
func TestOperatorGrantsGroup(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	c := s.CreateClient(nil)
	for _, path := range []string{"/portal/clients/new", "/portal/clients/" + c.ID} {
		page := string(p.Get(path).Body)
		fieldsets := regexp.MustCompile(`(?s)<fieldset[^>]*>\s*<legend>([^<]*)</legend>(.*?)</fieldset>`).FindAllStringSubmatch(page, -1)
		var group string
		for _, f := range fieldsets {
			if strings.Contains(f[2], `name="allow_impersonation"`) {
				if group != "" {
					t.Errorf("%s: allow_impersonation in two fieldsets", path)
				}
				group = f[1]
				for _, name := range []string{"resources", "exchange_any", "introspect_any"} {
					if !strings.Contains(f[2], `name="`+name+`"`) {
						t.Errorf("%s: %s is not in the group of allow_impersonation", path, name)
					}
				}
			}
			if f[1] == "Access token format" && strings.Contains(f[2], "impersonation") {
				t.Errorf("%s: impersonation under the access token format", path)
			}
		}
		if !strings.HasPrefix(group, "Operator grants") {
			t.Errorf("%s: allow_impersonation is in group %q", path, group)
		}
	}
	acct, secret, err := s.Accounts.Create(context.Background(), store.AccountIndividual, "Acme", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if page := string(s.PortalSignIn(acct.ID, secret).Get("/portal/clients/new").Body); strings.Contains(page, "Operator grants") || strings.Contains(page, "allow_impersonation") {
		t.Error("an account holder's form shows the operator grants")
	}
}

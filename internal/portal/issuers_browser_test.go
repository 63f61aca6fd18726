package portal_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// TestBrowserIssuers: in Chromium, an operator adds a trusted issuer
// through the form (a bad CEL rule first, refused beside the field with
// the input kept), sees it listed, and explains a token of that issuer for
// a client, seeing the CEL rule's value and the claims it would issue.
// Screenshots go to $TMPDIR/sts-portal-screenshots/ like TestBrowser's.
func TestBrowserIssuers(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	b := newBrowser(t, s)
	pw := s.CreateOperator("admin")
	const backend = "https://backend.example.com"
	c := s.CreateClient(func(c *store.Client) { c.Name, c.Audiences = "deployer", []string{backend} })
	k8s := ststest.StartIdP(t)

	if st := b.signIn("admin", pw); st != http.StatusOK {
		t.Fatalf("sign-in: %d", st)
	}
	if st := b.open("/portal/issuers"); st != http.StatusOK || !b.has("No issuer is trusted") {
		t.Fatalf("issuers: %d", st)
	}
	if st := b.submit("#add-issuer"); st != http.StatusOK {
		t.Fatalf("add page: %d", st)
	}
	b.fill("#name", "k8s")
	b.fill("#issuer", k8s.URL)
	b.fill("#client", c.ID)
	b.fill("#condition", `subject["kubernetes.io"].namespace = "prod"`)
	b.fill("#claims", `ns=subject["kubernetes.io"].namespace`)
	if st := b.submit("#save-issuer"); st != http.StatusUnprocessableEntity {
		t.Fatalf("bad rule: %d", st)
	}
	if msg := b.text("#policy-error"); !strings.Contains(msg, `issuer "k8s": condition: 1:`) {
		t.Fatalf("bad rule message %q", msg)
	}
	if v := b.value("#issuer"); v != k8s.URL {
		t.Fatalf("the refused form lost the issuer URL: %q", v)
	}
	b.shot("issuer-bad-rule")
	b.fill("#condition", `subject["kubernetes.io"].namespace == "prod"`)
	if st := b.submit("#save-issuer"); st != http.StatusOK || !b.has("The issuer is added") {
		t.Fatalf("add: %d", st)
	}
	if got := b.text("#detail-status"); got != "enabled" {
		t.Fatalf("status %q", got)
	}
	b.shot("issuer-detail")
	b.open("/portal/issuers")
	if !b.has(k8s.URL) || !b.has("discovery") || !b.has("claims (1)") {
		t.Fatal("the list does not show the new issuer")
	}
	b.shot("issuers")

	b.open("/portal/explain")
	b.run("choose the client", chromedp.SetValue(chromedp.CSS("#client_id"), c.ID))
	b.fill("#subject_token", k8s.Sign(k8s.Kubernetes("prod", "deployer", s.URL)))
	b.fill("#audience", backend)
	if st := b.submit("#explain"); st != http.StatusOK {
		t.Fatalf("explain: %d", st)
	}
	if got := b.text("#verdict"); got != "would issue" {
		t.Fatalf("verdict %q", got)
	}
	steps := b.text("table.steps")
	if !strings.Contains(steps, `subject["kubernetes.io"].namespace == "prod"`) || !strings.Contains(steps, "true") {
		t.Fatalf("the steps do not show the rule and its value:\n%s", steps)
	}
	if claims := b.text("#claims-json"); !strings.Contains(claims, `"ns": "prod"`) {
		t.Fatalf("claims %s", claims)
	}
	b.shot("explain")
	if recs, _ := s.ListAudit(context.Background(), store.AuditFilter{Action: "token"}); len(recs) != 0 {
		t.Fatalf("explaining audited %d token records", len(recs))
	}
}

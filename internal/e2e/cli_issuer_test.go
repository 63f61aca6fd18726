package e2e_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCLIUsesServerIssuer (issue 9, item 1): after `sts serve --issuer X`,
// operator commands run against the same data default to X: an IAT from
// `sts account issue-iat` carries X as its audience and registers at the
// running server, and `sts operator reset-password` prints X's sign-in URL.
// Before, both used http://127.0.0.1:8080 and the IAT was refused.
func TestCLIUsesServerIssuer(t *testing.T) {
	const issuer = "https://sts.newcomer.test"
	c := newCluster(t, clusterOptions{SQLite: true, Args: []string{"--issuer", issuer, "--log-level", "debug"}}, "a")
	n := c.Nodes[0]
	var acct struct {
		ID string `json:"account_id"`
	}
	c.CLIJSON(&acct, "account", "create", "individual", "--name", "Newcomer")
	iat := strings.TrimSpace(c.CLI("account", "issue-iat", acct.ID))
	_, claims, err := jwtParts(iat)
	if err != nil {
		t.Fatal(err)
	}
	if claims["aud"] != issuer {
		t.Errorf("IAT aud = %v, want the server's issuer %s", claims["aud"], issuer)
	}
	if r := n.Register(t.Context(), iat, map[string]any{"client_name": "newcomer-device"}); r.Status != http.StatusCreated {
		t.Errorf("register with the CLI's IAT: %s", r)
	}
	if out := c.CLI("operator", "reset-password", "admin"); !strings.Contains(out, issuer+"/portal/") {
		t.Errorf("reset-password does not print the server's sign-in URL:\n%s", out)
	}

	// An IAT for another issuer is refused saying so (its holder proved
	// the account's key: nothing leaks), it is not spent, and the server
	// logs the hidden cause of each refusal at debug level.
	other := strings.TrimSpace(c.CLI("account", "issue-iat", acct.ID, "--issuer", "http://127.0.0.1:8080"))
	r := n.Register(t.Context(), other, map[string]any{"client_name": "elsewhere"})
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.String(), "for audience http://127.0.0.1:8080") || !strings.Contains(r.String(), issuer) {
		t.Errorf("IAT for another issuer: %s", r)
	}
	bad := n.post(t.Context(), "/token/oauth2", credentials{"nobody", "wrong"}, url.Values{"grant_type": {"client_credentials"}})
	if bad.Status != http.StatusUnauthorized {
		t.Fatalf("unknown client: %s", bad)
	}
	if log := n.Log(); !strings.Contains(log, "request refused") || !strings.Contains(log, "cause=") {
		t.Errorf("no debug line with the hidden cause of a refusal in the server log:\n%s", log)
	}
}

package portal_test

import (
	"encoding/json"
	"html"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

var tryItOf = regexp.MustCompile(`(?s)<pre class="code" id="try-it"[^>]*>(.*?)</pre>`)

// runTryIt runs the "Try it" snippet of a secret page in bash, pasting
// secret when it waits, and returns the access token it obtained.
func runTryIt(t *testing.T, page []byte, secret string) string {
	t.Helper()
	m := tryItOf.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no Try it snippet on the page:\n%s", page)
	}
	snippet := html.UnescapeString(string(m[1]))
	if strings.Contains(snippet, secret) || strings.Contains(snippet, "$CLIENT_ID") {
		t.Errorf("the snippet holds the secret or an unset $CLIENT_ID:\n%s", snippet)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	cmd := exec.Command(bash, "-c", snippet)
	cmd.Stdin = strings.NewReader(secret + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("snippet %q: %v\n%s", snippet, err, out)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("snippet %q answered %s", snippet, out)
	}
	return tok.AccessToken
}

// TestTryItSnippet (issue 9, portal item 4): the secret page's snippet
// names the client's real id and the server's token endpoint, keeps the
// secret out, and obtains a token when run with the secret pasted, also
// for an id the shell and Basic authentication would mangle, and for a
// client registered for client_secret_post.
func TestTryItSnippet(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	for _, id := range []string{"", "svc:a$b'c%d+e!f"} {
		r := p.Post("/portal/clients/new", url.Values{"name": {"try"}, "client_id": {id},
			"grant_type": {oauth.GrantTypeClientCredentials}, "token_format": {"jwt"}})
		if r.Status != 200 {
			t.Fatalf("register %q: %d\n%s", id, r.Status, r.Body)
		}
		gotID, secret := extractValue(t, r.Body, "client-id"), extractValue(t, r.Body, "client-secret")
		body := html.UnescapeString(string(r.Body))
		if !strings.Contains(body, s.URL+"/token/oauth2") || !strings.Contains(body, url.QueryEscape(html.UnescapeString(gotID))) {
			t.Errorf("snippet lacks the token endpoint or the id %q", gotID)
		}
		runTryIt(t, r.Body, secret)
	}

	// A client_secret_post client gets a snippet posting its credentials;
	// a rotated secret's page has the snippet too.
	c := s.CreateClient(func(c *store.Client) { c.AuthMethod = oauth.AuthMethodClientSecretPost })
	r := p.Post("/portal/clients/"+c.ID+"/rotate", url.Values{"grace": {"0"}})
	if r.Status != 200 {
		t.Fatalf("rotate: %d", r.Status)
	}
	runTryIt(t, r.Body, extractValue(t, r.Body, "client-secret"))

	// Without client_credentials there is no snippet, but the endpoint.
	ex := s.CreateClient(func(c *store.Client) { c.GrantTypes = []string{oauth.GrantTypeTokenExchange} })
	r = p.Post("/portal/clients/"+ex.ID+"/rotate", url.Values{"grace": {"0"}})
	if tryItOf.Match(r.Body) || !strings.Contains(string(r.Body), "<code>"+s.URL+"/token/oauth2</code>") {
		t.Errorf("exchange-only client's secret page:\n%s", r.Body)
	}
}

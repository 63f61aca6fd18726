package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
)

// startServer runs the STS over the CLI's data directory on a loopback
// port and returns its token endpoint.
func startServer(t *testing.T, c *cli) string {
	t.Helper()
	env := c.env()
	km, err := env.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	srv, err := server.New(t.Context(), server.Options{
		Issuer: issuer,
		Store:  env.Store,
		Keys:   km,
		Hasher: env.Hasher,
		Limits: policy.Limits{AccessTokenTTL: time.Hour, RefreshTokenTTL: 24 * time.Hour, MaxTokenTTL: 24 * time.Hour},
		Leeway: 30 * time.Second,
		Logger: env.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return issuer + server.TokenPath
}

// createClient registers a client through the CLI and returns its secret.
func createClient(t *testing.T, c *cli, args ...string) string {
	t.Helper()
	var v clientView
	c.okJSON(&v, append([]string{"client", "create", "-o", "json"}, args...)...)
	return v.ClientSecret
}

func TestTokenEndToEnd(t *testing.T) {
	c := newCLI(t, testKEK)
	endpoint := startServer(t, c)

	// A client id that only survives Basic authentication if it is
	// form-url-encoded first (RFC 6749 §2.3.1).
	const callerID = "svc%41+x:1"
	callerSecret := createClient(t, c, "--name", "caller", "--client-id", callerID,
		"--grant-type", "client-credentials", "--scope", "read write", "--audience", "https://gw.example.com")
	gwSecret := createClient(t, c, "--name", "gateway", "--client-id", "gw", "--resource", "https://gw.example.com",
		"--grant-type", "exchange", "--audience", "https://backend.example.com/api", "--scope", "read")

	tok := func(args ...string) []string {
		return append([]string{"token"}, append(args, "--server", strings.TrimSuffix(endpoint, server.TokenPath))...)
	}

	// client-credentials with Basic, then with post.
	var first oauth.TokenResponse
	c.okJSON(&first, tok("client-credentials", "--client-id", callerID, "--client-secret", callerSecret, "-o", "json")...)
	if first.AccessToken == "" || first.TokenType != "Bearer" || first.Scope != "read write" {
		t.Fatalf("client-credentials (basic) = %+v", first)
	}
	subject := strings.TrimSpace(c.ok(tok("client-credentials", "--client-id", callerID, "--client-secret", callerSecret,
		"--auth-method", "post", "--scope", "read", "--scope", "write", "-o", "token")...))
	if strings.Count(subject, ".") != 2 {
		t.Fatalf("-o token printed %q, want a JWT", subject)
	}

	// Exchange, the subject token read from stdin and the secret from
	// the environment.
	t.Setenv("STS_CLIENT_SECRET", gwSecret)
	out, stderr, err := c.runIn(subject+"\n", tok("exchange", "--client-id", "gw", "--subject-token", "-",
		"--subject-token-type", "access_token", "--audience", "https://backend.example.com/api", "--scope", "read", "-o", "json")...)
	if err != nil {
		t.Fatalf("exchange: %v\n%s", err, stderr)
	}
	var exchanged oauth.TokenResponse
	if err := json.Unmarshal([]byte(out), &exchanged); err != nil {
		t.Fatalf("exchange output: %v\n%s", err, out)
	}
	if exchanged.IssuedTokenType != oauth.TokenTypeJWT || exchanged.AccessToken == "" {
		t.Fatalf("exchange = %+v", exchanged)
	}
	if !strings.HasPrefix(out, "{\n  \"") {
		t.Errorf("exchange output is not pretty-printed:\n%s", out)
	}

	// inspect: signature and expiry valid; the gateway is the actor.
	text := c.ok("token", "inspect", exchanged.AccessToken)
	for _, s := range []string{"format:", "jwt", "signature:", "valid (kid", "expiry:", "valid until", `"sub": "svc%41+x:1"`, `"act"`} {
		if !strings.Contains(text, s) {
			t.Errorf("inspect does not contain %q:\n%s", s, text)
		}
	}
	var in inspectView
	c.okJSON(&in, "token", "inspect", exchanged.AccessToken, "-o", "json")
	act, _ := in.Claims["act"].(map[string]any)
	if !in.Valid || !in.Signature.Valid || in.Signature.KeyState != "current" || *in.Expired || act["sub"] != "gw" {
		t.Fatalf("inspect -o json = %+v", in)
	}
	if in.Header["typ"] != oauth.JWTTypeAccessToken {
		t.Errorf("header typ = %v", in.Header["typ"])
	}

	// After a rotation the token still verifies, with a retired key.
	c.ok("key", "rotate")
	c.okJSON(&in, "token", "inspect", exchanged.AccessToken, "-o", "json")
	if !in.Valid || in.Signature.KeyState != "retired" {
		t.Fatalf("inspect after rotation = %+v", in.Signature)
	}

	// A token whose payload was altered fails, after the report.
	parts := strings.Split(exchanged.AccessToken, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"read"`, `"admin"`, 1)))
	out, _, err = c.runIn("", "token", "inspect", strings.Join(parts, "."))
	if err == nil || !strings.Contains(err.Error(), "token is not valid: signature") || !strings.Contains(out, "INVALID") {
		t.Errorf("inspect of a tampered token: err %v\n%s", err, out)
	}
	// From stdin, and garbage.
	if out, _, err := c.runIn(subject, "token", "inspect", "-"); err != nil || !strings.Contains(out, "signature:") {
		t.Errorf("inspect -: %v\n%s", err, out)
	}
	c.fail("not a JWT", "token", "inspect", "garbage")

	// OAuth errors end in one line: "<error>: <error_description>".
	c.fail("invalid_target: ", tok("exchange", "--client-id", "gw", "--subject-token", subject,
		"--audience", "https://elsewhere.example.com")...)
	c.fail("invalid_client: client authentication failed", tok("client-credentials", "--client-id", callerID,
		"--client-secret", "wrong")...)
	c.fail("unauthorized_client: ", tok("client-credentials", "--client-id", "gw")...) // secret from env
	c.fail("invalid_request: subject_token is invalid", tok("exchange", "--client-id", "gw", "--subject-token", "nope.nope.nope")...)

	// The CLI writes to the database; the running server's client cache
	// sees the change within its bound (cached.Options.ClientTTL, 2 s).
	// A disabled client cannot authenticate; enabled again, it can.
	c.ok("client", "disable", callerID)
	c.within(3*time.Second, "invalid_client", tok("client-credentials", "--client-id", callerID, "--client-secret", callerSecret)...)
	c.ok("client", "enable", callerID)
	c.within(3*time.Second, "", tok("client-credentials", "--client-id", callerID, "--client-secret", callerSecret)...)

	// rotate-secret: the old secret is refused (no grace).
	var rotated clientView
	c.okJSON(&rotated, "client", "rotate-secret", callerID, "-o", "json")
	c.within(3*time.Second, "invalid_client", tok("client-credentials", "--client-id", callerID, "--client-secret", callerSecret)...)
	c.ok(tok("client-credentials", "--client-id", callerID, "--client-secret", rotated.ClientSecret)...)
}

// within retries a command until it fails with want (or, with want "",
// succeeds), for at most d.
func (c *cli) within(d time.Duration, want string, args ...string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, stderr, err := c.run(args...)
		if (want == "" && err == nil) || (want != "" && err != nil && strings.Contains(err.Error()+stderr, want)) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%v: not %q within %v (err %v)", args, want, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTokenInspectOpaque(t *testing.T) {
	c := newCLI(t, testKEK)
	endpoint := startServer(t, c)
	secret := createClient(t, c, "--name", "op", "--client-id", "op", "--grant-type", "client-credentials",
		"--token-format", "opaque", "--audience", "orders", "--scope", "read")
	at := strings.TrimSpace(c.ok("token", "client-credentials", "--server", strings.TrimSuffix(endpoint, server.TokenPath),
		"--client-id", "op", "--client-secret", secret, "-o", "token"))
	if !strings.HasPrefix(at, "sts_at_") {
		t.Fatalf("opaque client got %q", at)
	}
	var in inspectView
	c.okJSON(&in, "token", "inspect", at, "-o", "json")
	r := in.Record
	if !in.Valid || in.Format != "opaque" || r == nil || r.Kind != "access" || r.ClientID != "op" || r.Subject != "op" ||
		r.Scope != "read" || len(r.Audience) != 1 || r.Audience[0] != "orders" || r.RevokedAt != "" {
		t.Fatalf("inspect opaque = %+v %+v", in, r)
	}
	text := c.ok("token", "inspect", at)
	for _, s := range []string{"opaque", "kind:", "access", "client_id:", "op", "orders", "valid until"} {
		if !strings.Contains(text, s) {
			t.Errorf("inspect opaque does not contain %q:\n%s", s, text)
		}
	}

	// Revoked at the server: inspect reports it and exits non-zero.
	form := url.Values{"token": {at}}
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(endpoint, server.TokenPath)+server.RevokePath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("op", secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %s", res.Status)
	}
	out, _, err := c.runIn("", "token", "inspect", at, "-o", "json")
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("inspect of a revoked token: err %v", err)
	}
	if err := json.Unmarshal([]byte(out), &in); err != nil || in.Valid || in.Record.RevokedAt == "" {
		t.Fatalf("inspect of a revoked token printed %s", out)
	}

	c.fail("not found", "token", "inspect", "sts_at_unknown")
}

func TestTokenClientFlags(t *testing.T) {
	c := newCLI(t, testKEK)
	c.fail("--client-id and --client-secret", "token", "client-credentials")
	c.fail("--auth-method must be basic or post", "token", "client-credentials", "--client-id", "a", "--client-secret", "b", "--auth-method", "jwt")
	c.fail("--server", "token", "client-credentials", "--client-id", "a", "--client-secret", "b", "--server", "ftp://x")
	c.fail("--server is given 2 times", "token", "client-credentials", "--client-id", "a", "--client-secret", "b", "--server", "http://a", "--server", "http://b")
	c.fail("--output must be text or json", "token", "client-credentials", "--client-id", "a", "--client-secret", "b", "-o", "yaml")
	c.fail("--subject-token is required", "token", "exchange", "--client-id", "a", "--client-secret", "b")
	c.fail("only one of", "token", "exchange", "--client-id", "a", "--client-secret", "b", "--subject-token", "-", "--actor-token", "-")
	c.fail("--actor-token-type needs --actor-token", "token", "exchange", "--client-id", "a", "--client-secret", "b",
		"--subject-token", "x", "--actor-token-type", "jwt")
}

// TestTokenExchangeRequest checks the request the CLI sends: parameter
// names, short token-type names resolved, Basic credentials encoded.
func TestTokenExchangeRequest(t *testing.T) {
	c := newCLI(t, testKEK)
	var got *http.Request
	var form url.Values
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got, form = r, r.PostForm
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at","token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:jwt"}`))
	}))
	defer ts.Close()
	c.ok("token", "exchange", "--server", ts.URL, "--client-id", "a:b%c+d", "--client-secret", "s e:c",
		"--subject-token", "SUB", "--subject-token-type", "jwt", "--actor-token", "ACT", "--actor-token-type", oauth.TokenTypeAccessToken,
		"--resource", "https://r1.example", "--resource", "https://r2.example", "--audience", "aud1",
		"--scope", "a b", "--requested-token-type", "refresh_token")
	want := url.Values{
		"grant_type":           {oauth.GrantTypeTokenExchange},
		"subject_token":        {"SUB"},
		"subject_token_type":   {oauth.TokenTypeJWT},
		"actor_token":          {"ACT"},
		"actor_token_type":     {oauth.TokenTypeAccessToken},
		"resource":             {"https://r1.example", "https://r2.example"},
		"audience":             {"aud1"},
		"scope":                {"a b"},
		"requested_token_type": {oauth.TokenTypeRefreshToken},
	}
	if !equalJSON(t, form, want) {
		t.Errorf("form:\n got %v\nwant %v", form, want)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(got.Header.Get("Authorization"), "Basic "))
	if string(raw) != "a%3Ab%25c%2Bd:s+e%3Ac" {
		t.Errorf("Basic credentials = %q, want form-url-encoded id and secret", raw)
	}

	// A non-OAuth error is still one line.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream\nbroken", http.StatusBadGateway)
	}))
	defer bad.Close()
	c.fail("token endpoint answered 502 Bad Gateway", "token", "client-credentials", "--server", bad.URL,
		"--client-id", "a", "--client-secret", "b")
}

// inspectView decodes the JSON output of `token inspect`.
type inspectView struct {
	Format    string         `json:"format"`
	Valid     bool           `json:"valid"`
	Reason    string         `json:"reason"`
	Header    map[string]any `json:"header"`
	Claims    map[string]any `json:"claims"`
	Signature *sigCheck      `json:"signature"`
	Expired   *bool          `json:"expired"`
	Record    *recordView    `json:"record"`
}

package e2e_test

// Bytes that are not text — a byte that is not part of valid UTF-8, and
// NUL — in every field a caller controls, sent to a real server on
// PostgreSQL, whose text columns refuse them (SQLSTATE 22021, in a lookup
// as in a write) where SQLite stores them. Before: a client_id of %FF or
// %00 (form or Basic), a registration path, an initial access token's iss
// were each a 500 (the lookup failed); and one such byte in an audited
// field (an X-Request-Id header) made PostgreSQL refuse the audit
// writer's whole batch, other requests' records with it, and with the
// audit journal the drain loop retried it forever.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// rawJWT is a compact JWS of header and claims with a junk signature:
// what is refused before any signature check needs no key.
func rawJWT(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims) // "a\x00" becomes "a\u0000"
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + ".AAAA"
}

// bytesCase is one request carrying bytes that are not text, or a
// legitimate request with such bytes where they are harmless.
type bytesCase struct {
	name   string
	action string // of its audit record: "token" when refused before its grant type is read
	status int
	code   oauth.ErrorCode // "" for a success
	req    func(id string) *http.Request
}

// TestAttackRawBytesRefusedAndAudited: on PostgreSQL, with and without the
// audit journal, each request with bytes that are not text in a form
// parameter (client_id, scope, audience, resource, subject_token, its
// type, a parameter's name, the token of introspection and revocation),
// Basic credentials, a client assertion's iss, a DPoP proof's jti, a
// registration path or an initial access token's iss is refused with its
// OAuth error, never 500, sent at the same moment as a legitimate
// client's requests, which all succeed; a legitimate request with such a
// byte in X-Request-Id or traceparent succeeds. Every request has its
// audit record (the X-Request-Id escaped), `sts audit verify` passes, and
// the server logged no error.
func TestAttackRawBytesRefusedAndAudited(t *testing.T) {
	for _, journal := range []string{"off", "on"} {
		t.Run("audit-journal="+journal, func(t *testing.T) { testRawBytes(t, journal) })
	}
}

func testRawBytes(t *testing.T, journal string) {
	c := newCluster(t, clusterOptions{Args: []string{"--audit-journal", journal}}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	frontend := c.CreateClient("--name", "frontend", "--audience", rs08Resource, "--scope", "api")
	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Resource, "--audience", backendAud, "--scope", "api")
	subject := accessToken(t, n.ClientCredentials(ctx, frontend))
	var acct struct {
		ID string `json:"account_id"`
	}
	c.CLIJSON(&acct, "account", "create", "individual", "--name", "Alice Example")

	form := func(path, body string, cl *credentials) func(string) *http.Request {
		return func(id string) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if cl != nil {
				req.Header.Set("Authorization", oauth.BasicAuth(cl.ID, cl.Secret))
			}
			req.Header.Set("X-Request-Id", id)
			return req
		}
	}
	withHeader := func(f func(string) *http.Request, k, v string) func(string) *http.Request {
		return func(id string) *http.Request {
			req := f(id)
			req.Header.Set(k, v)
			return req
		}
	}
	cc := "grant_type=" + url.QueryEscape(oauth.GrantTypeClientCredentials)
	exchange := "grant_type=" + url.QueryEscape(oauth.GrantTypeTokenExchange) + "&resource=" + url.QueryEscape(backendAud)
	dpopKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: dpopKey},
		(&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", jose.JSONWebKey{Key: dpopKey.Public()}))
	if err != nil {
		t.Fatal(err)
	}
	proofClaims, _ := json.Marshal(map[string]any{"jti": "j\x00", "htm": "POST", "htu": clusterIssuer + server.TokenPath, "iat": time.Now().Unix()})
	jws, err := signer.Sign(proofClaims)
	if err != nil {
		t.Fatal(err)
	}
	nulProof, _ := jws.CompactSerialize()
	iat := rawJWT(map[string]any{"alg": "HS256", "typ": "JWT"},
		map[string]any{"iss": "acct-\x00", "aud": clusterIssuer, "jti": "i1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()})
	assertion := rawJWT(map[string]any{"alg": "ES256"},
		map[string]any{"iss": "c\x00", "sub": "c\x00", "aud": clusterIssuer, "jti": "a1", "exp": time.Now().Add(time.Minute).Unix()})

	const badRequestID = "raw-\xff-id" // stored as raw-\xff-id
	cases := []bytesCase{
		{"client_id 0xff, client_secret_post", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&client_id=%FF&client_secret=x", nil)},
		{"client_id with NUL, client_secret_post", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&client_id=a%00b&client_secret=x", nil)},
		{"client_id 0xff, certificate method", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&client_id=%FF", nil)},
		{"Basic user 0xff, form-encoded", "token.client_credentials", 401, oauth.ErrInvalidClient, form(server.TokenPath, cc, &credentials{"a\xff", "x"})},
		{"Basic user with NUL", "token.client_credentials", 401, oauth.ErrInvalidClient, form(server.TokenPath, cc, &credentials{"a\x00", "x"})},
		{"Basic user 0xff, raw", "token.client_credentials", 401, oauth.ErrInvalidClient,
			withHeader(form(server.TokenPath, cc, nil), "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("b\xfe\xff:x")))},
		{"Basic secret 0xff", "token.client_credentials", 401, oauth.ErrInvalidClient, form(server.TokenPath, cc, &credentials{frontend.ID, "\xff"})},
		{"scope", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&scope=api%FF", &frontend)},
		{"audience", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&audience="+url.QueryEscape(rs08Resource)+"%C3", &frontend)},
		{"resource with NUL", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&resource="+url.QueryEscape(rs08Resource)+"%00", &frontend)},
		{"subject_token", "token", 400, oauth.ErrInvalidRequest,
			form(server.TokenPath, exchange+"&subject_token="+subject+"%FF&subject_token_type="+url.QueryEscape(oauth.TokenTypeAccessToken), &rs08)},
		{"subject_token_type with NUL", "token", 400, oauth.ErrInvalidRequest,
			form(server.TokenPath, exchange+"&subject_token="+subject+"&subject_token_type=%00", &rs08)},
		{"parameter name", "token", 400, oauth.ErrInvalidRequest, form(server.TokenPath, cc+"&x%FF=1", &frontend)},
		{"client assertion iss with NUL", "token.client_credentials", 401, oauth.ErrInvalidClient,
			form(server.TokenPath, cc+"&client_assertion_type="+url.QueryEscape(oauth.ClientAssertionTypeJWTBearer)+"&client_assertion="+assertion, nil)},
		{"DPoP proof jti with NUL", "token.client_credentials", 400, "invalid_dpop_proof", withHeader(form(server.TokenPath, cc, &frontend), dpop.Header, nulProof)},
		{"introspection token 0xff", "token.introspect", 400, oauth.ErrInvalidRequest, form(server.IntrospectPath, "token=%FF", &rs08)},
		{"revocation token with NUL", "token.revoke", 400, oauth.ErrInvalidRequest, form(server.RevokePath, "token=a%00", &frontend)},
		{"registration path 0xff", "client.read", 401, oauth.ErrInvalidToken, func(id string) *http.Request {
			req, _ := http.NewRequest(http.MethodGet, n.URL+"/register/%FF", nil)
			req.Header.Set("Authorization", "Bearer junk")
			req.Header.Set("X-Request-Id", id)
			return req
		}},
		{"registration path with NUL", "client.delete", 401, oauth.ErrInvalidToken, func(id string) *http.Request {
			req, _ := http.NewRequest(http.MethodDelete, n.URL+"/register/a%00", nil)
			req.Header.Set("Authorization", "Bearer junk")
			req.Header.Set("X-Request-Id", id)
			return req
		}},
		{"initial access token iss with NUL", "client.register", 401, oauth.ErrInvalidToken, func(id string) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, n.URL+"/register", strings.NewReader(`{"client_name":"radio-7"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+iat)
			req.Header.Set("X-Request-Id", id)
			return req
		}},
		// Harmless where they are: the request succeeds, its record
		// holds the id escaped.
		{"X-Request-Id 0xff", "token.client_credentials", 200, "", func(string) *http.Request { return form(server.TokenPath, cc, &frontend)(badRequestID) }},
		{"traceparent 0xff", "token.client_credentials", 200, "",
			withHeader(form(server.TokenPath, cc, &frontend), "Traceparent", "00-\xff\xfe0000000000000000000000000000-0000000000000001-01")},
	}

	// Each case at the same moment as a legitimate exchange and
	// client_credentials request, so that their audit records share a
	// batch.
	type sent struct{ id, action string }
	var (
		mu    sync.Mutex
		all   []sent
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	note := func(id, action string) {
		mu.Lock()
		all = append(all, sent{id, action})
		mu.Unlock()
	}
	for i, bc := range cases {
		id := fmt.Sprintf("bytes-%02d", i)
		if bc.name == "X-Request-Id 0xff" {
			id = badRequestID
		}
		wg.Go(func() {
			<-start
			r := n.send(ctx, bc.req(id))
			note(id, bc.action)
			if r.Err != nil || r.Status != bc.status || r.errorCode() != string(bc.code) {
				t.Errorf("%s: %v, want %d %s", bc.name, r, bc.status, bc.code)
			}
		})
		wg.Go(func() {
			<-start
			lid := fmt.Sprintf("legit-cc-%02d", i)
			req := form(server.TokenPath, cc, &frontend)(lid)
			if r := n.send(ctx, req); r.Err != nil || r.Status != http.StatusOK {
				t.Errorf("legitimate client_credentials beside %q: %v", bc.name, r)
			}
			note(lid, "token.client_credentials")
			lid = fmt.Sprintf("legit-ex-%02d", i)
			req = form(server.TokenPath, exchange+"&subject_token="+subject+"&subject_token_type="+url.QueryEscape(oauth.TokenTypeAccessToken), &rs08)(lid)
			if r := n.send(ctx, req); r.Err != nil || r.Status != http.StatusOK {
				t.Errorf("legitimate exchange beside %q: %v", bc.name, r)
			}
			note(lid, "token.exchange")
		})
	}
	close(start)
	wg.Wait()
	// Afterwards the legitimate client still gets its tokens.
	if r := n.ClientCredentials(ctx, frontend); r.Status != http.StatusOK {
		t.Errorf("legitimate client afterwards: %v", r)
	}
	note("", "token.client_credentials")
	note("", "token.client_credentials") // the subject token, before

	// A graceful stop writes what is still in memory (coalesced
	// repeats) and, with the journal, applies it to the database.
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop")
	}
	if log := n.Log(); strings.Contains(log, "level=ERROR") {
		t.Errorf("the server logged errors:\n%s", log)
	}

	type rec struct {
		Action    string `json:"action"`
		Decision  string `json:"decision"`
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
		Count     int    `json:"count"`
	}
	var recs []rec
	readLines(c.CLI("audit", "export", "--format", "jsonl"), func(line string) {
		var r rec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		recs = append(recs, r)
	})
	byID := map[string]rec{}
	counted := map[string]int{} // by action: requests the records stand for
	for _, r := range recs {
		byID[r.RequestID] = r
		counted[r.Action] += max(r.Count, 1)
	}
	want := map[string]int{}
	missing := 0
	for _, s := range all {
		want[s.action]++
		if s.id == "" {
			continue
		}
		stored := s.id
		if s.id == badRequestID {
			stored = `raw-\xff-id`
		}
		if r, ok := byID[stored]; !ok || r.Action != s.action {
			missing++ // coalesced with an identical refusal: counted below
		}
	}
	for action, n := range counted {
		if want[action] != n && action != "client.create" && action != "account.create" {
			t.Errorf("action %s: the audit records stand for %d requests, %d were sent", action, n, want[action])
		}
	}
	for action, n := range want {
		if counted[action] != n {
			t.Errorf("action %s: the audit records stand for %d requests, %d were sent", action, counted[action], n)
		}
	}
	if r, ok := byID[`raw-\xff-id`]; !ok || r.Decision != store.DecisionGranted {
		t.Errorf("the request with X-Request-Id %q has no record under its escaped id: %+v", badRequestID, r)
	}
	t.Logf("%d requests, %d audit records; %d requests' records coalesced with an identical refusal", len(all), len(recs), missing)

	out := c.CLI("audit", "verify")
	if !strings.Contains(out, "ok") {
		t.Errorf("sts audit verify:\n%s", out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		t.Log("audit verify: " + sc.Text())
	}
}

// TestAttackRawBytesPortal: on PostgreSQL, a portal form, path or query
// holding bytes that are not text (a client's name, a client id in the
// path, an audit filter, an account in a delegation import's path) is
// answered 400 with a page saying so, never 500, and a sign-in name 401
// as any malformed name; the portal keeps working and the server logs no
// error.
func TestAttackRawBytesPortal(t *testing.T) {
	c := newCluster(t, clusterOptions{}, "a")
	n := c.Nodes[0]
	var op struct {
		Password string `json:"password"`
	}
	c.CLIJSON(&op, "operator", "create", "ops")
	v := newPortalVisitor(n, "127.0.0.1")
	if a := v.signIn(t, "ops", op.Password); !a.session {
		t.Fatalf("sign-in: %d, no session", a.status)
	}
	get := func(path string) int {
		a, err := v.do(http.MethodGet, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a.status
	}
	if s := get("/portal/clients/new"); s != http.StatusOK || v.csrf == "" {
		t.Fatalf("new client form: %d", s)
	}
	post := func(path string, f url.Values) int {
		f.Set("csrf", v.csrf)
		a, err := v.do(http.MethodPost, path, f)
		if err != nil {
			t.Fatal(err)
		}
		return a.status
	}
	for _, tc := range []struct {
		name   string
		status func() int
	}{
		{"client name 0xff", func() int { return post("/portal/clients/new", url.Values{"name": {"radio\xff"}}) }},
		{"client name with NUL", func() int { return post("/portal/clients/new", url.Values{"name": {"radio\x00"}}) }},
		{"client id in the path", func() int { return get("/portal/clients/%FF") }},
		{"client id in the path, NUL", func() int { return get("/portal/clients/a%00/delete") }},
		{"audit filter", func() int { return get("/portal/audit?client=%FF") }},
		{"account in a delegation import's path", func() int {
			return post("/portal/accounts/acct-%00/delegations/import", url.Values{"proxy": {"dp:1:x"}})
		}},
		{"account id field", func() int {
			return post("/portal/clients/new", url.Values{"name": {"radio"}, "account": {"acct-\xff"}})
		}},
	} {
		if s := tc.status(); s != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", tc.name, s)
		}
	}
	w := newPortalVisitor(n, "127.0.0.1")
	if err := w.form(); err != nil {
		t.Fatal(err)
	}
	if a, err := w.post("ops\xff", op.Password); err != nil || a.status != http.StatusUnauthorized || a.session {
		t.Errorf("sign-in with a name that is not text: %d, session %v (%v)", a.status, a.session, err)
	}
	if s := get("/portal/clients"); s != http.StatusOK {
		t.Errorf("the client list afterwards: %d", s)
	}
	if log := n.Log(); strings.Contains(log, "level=ERROR") {
		t.Errorf("the server logged errors:\n%s", log)
	}
}

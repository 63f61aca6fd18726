package e2e_test

// Issue 11: attacks on federation, replayed over HTTP against a real
// `sts serve` process on SQLite. The upstream issuers run in the test
// process on loopback (ststest.IdP: discovery and a JWKS, tokens shaped
// as Kubernetes service account tokens); the operator declares them with
// `sts issuer add` on the server's data while it runs, as the README
// does, and the server picks them up within server.IssuerSyncInterval.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/oauth"
)

// fedBackend is the audience federated clients ask tokens for.
const fedBackend = "https://backend.fed.test"

// fedClient registers a client that may obtain tokens for fedBackend.
func fedClient(c *cluster, name string) credentials {
	c.t.Helper()
	return c.CreateClient("--name", name, "--audience", fedBackend)
}

// trustIssuer declares p a trusted issuer with `sts issuer add`: its
// tokens (type jwt) must be for this server, and only client may present
// them. The server learns of it later (see waitFor).
func trustIssuer(c *cluster, p *ststest.IdP, name, client string, extra ...string) {
	c.t.Helper()
	c.CLI(append([]string{"issuer", "add", p.URL, "--name", name, "--client", client,
		"--audience", clusterIssuer, "--token-type", "jwt"}, extra...)...)
}

// fedExchange exchanges an upstream JWT for a token for fedBackend.
func fedExchange(ctx context.Context, n *node, cl credentials, subject string) reply {
	return n.post(ctx, server.TokenPath, cl, url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeJWT},
		"audience":           {fedBackend},
	})
}

// waitFor repeats the exchange of subject until cond holds of the answer
// or bound passes; it returns the last answer and how long it took.
func waitFor(t *testing.T, n *node, cl credentials, subject string, bound time.Duration, cond func(reply) bool) (reply, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		r := fedExchange(t.Context(), n, cl, subject)
		if cond(r) {
			return r, time.Since(start)
		}
		if time.Since(start) > bound {
			return r, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func granted(r reply) bool { return r.Status == http.StatusOK }

// waitTrusted waits until the running server grants subject, i.e. has
// loaded the issuers added on its data (every IssuerSyncInterval).
func waitTrusted(t *testing.T, n *node, cl credentials, subject string) {
	t.Helper()
	if r, took := waitFor(t, n, cl, subject, 3*server.IssuerSyncInterval, granted); !granted(r) {
		t.Fatalf("the server did not start trusting the issuer within %v: %s", took, r)
	}
}

// auditWith waits (briefly: refusals may be written by the coalescing
// writer) for a refused token.exchange record of client whose detail
// holds every one of want.
func auditWith(t *testing.T, c *cluster, clientID string, want ...string) store.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := auditOf(t, c, clientID)
	next:
		for _, a := range recs {
			if a.Action != "token.exchange" || a.Decision != store.DecisionRefused {
				continue
			}
			for _, w := range want {
				if !strings.Contains(a.Detail, w) {
					continue next
				}
			}
			return a
		}
		if time.Now().After(deadline) {
			var details []string
			for _, a := range recs {
				details = append(details, a.Action+" "+a.Decision+": "+a.Detail)
			}
			t.Fatalf("no refused token.exchange record of %s says %q; records:\n%s", clientID, want, strings.Join(details, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signWithOptions signs claims ES256 with key, naming kid, with the
// header parameters of opts.
func signWithOptions(t *testing.T, key jose.JSONWebKey, kid string, opts *jose.SignerOptions, claims map[string]any) string {
	t.Helper()
	opts = opts.WithType("JWT")
	if !opts.EmbedJWK {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomKid() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "kid-" + hex.EncodeToString(b)
}

// A token with alg none, and one signed HS256 with the issuer's public
// JWK as the HMAC secret (the classic algorithm confusion), are refused
// and audited, naming the issuer; the genuine token is granted.
func TestAttackFederationForgedAlgorithms(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p := ststest.StartIdP(t)
	cl := fedClient(c, "workload")
	trustIssuer(c, p, "k8s", cl.ID)
	claims := func() map[string]any { return p.Kubernetes("prod", "deployer", clusterIssuer) }
	waitTrusted(t, n, cl, p.Sign(claims()))

	key := p.Key()
	pub, err := key.Public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	hs256 := p.SignWith(jose.JSONWebKey{Key: pub, KeyID: key.KeyID, Algorithm: "HS256"}, "JWT", claims())
	payload := strings.Split(p.Sign(claims()), ".")[1]
	none := b64([]byte(`{"alg":"none","typ":"JWT","kid":"`+key.KeyID+`"}`)) + "." + payload + "."
	// The same with a signature left in place: still alg none.
	noneSigned := b64([]byte(`{"alg":"none","typ":"JWT","kid":"`+key.KeyID+`"}`)) + "." + payload + "." + strings.Split(p.Sign(claims()), ".")[2]
	before := p.Fetches.Load()
	for _, tt := range []struct{ name, token, alg string }{
		{"alg none", none, "none"},
		{"alg none with a signature", noneSigned, "none"},
		{"HS256 keyed with the public JWK", hs256, "HS256"},
	} {
		why := "token from issuer " + p.URL + " is signed with alg " + tt.alg + ", which is not accepted"
		wantRefused(t, tt.name, fedExchange(t.Context(), n, cl, tt.token), why)
		// Audited, and the forged token's claimed subject is not
		// recorded as if it had been vouched for.
		if rec := auditWith(t, c, cl.ID, why); rec.Error != string(oauth.ErrInvalidRequest) || rec.Subject != "" {
			t.Errorf("%s: audited as %+v", tt.name, rec)
		}
	}
	if n := p.Fetches.Load() - before; n > 1 {
		t.Errorf("forged algorithms caused %d upstream requests", n)
	}

	// Keys the token brings along (RFC 7515 §4.1.2-4.1.5: jku, jwk, x5u)
	// are never used nor fetched: a token signed with the attacker's key
	// that points at the attacker's key set, or embeds the key, is
	// refused, and the attacker's server sees no request.
	attacker := ststest.StartIdP(t)
	for _, tt := range []struct {
		name string
		opts *jose.SignerOptions
	}{
		{"jku", (&jose.SignerOptions{}).WithHeader("jku", attacker.URL+"/keys")},
		{"x5u", (&jose.SignerOptions{}).WithHeader("x5u", attacker.URL+"/keys")},
		{"jwk", &jose.SignerOptions{EmbedJWK: true}},
	} {
		for _, kid := range []string{attacker.Key().KeyID, key.KeyID} {
			tok := signWithOptions(t, attacker.Key(), kid, tt.opts, claims())
			r := fedExchange(t.Context(), n, cl, tok)
			wantRefused(t, tt.name+" with kid "+kid, r, p.URL)
		}
	}
	if got := attacker.Fetches.Load(); got != 0 {
		t.Errorf("tokens pointing at the attacker's keys made %d requests to it", got)
	}
	// And the genuine token still passes: the refusals were the forgery's.
	if r := fedExchange(t.Context(), n, cl, p.Sign(claims())); !granted(r) {
		t.Fatalf("genuine token after the forgeries: %s", r)
	}
}

// A flood of tokens naming kids the upstream never had, from a client
// allowed to present the issuer's tokens, causes at most a couple of JWKS
// fetches (the refresh on an unknown kid is rate-limited per issuer),
// every one is refused, and the legitimate exchanges made meanwhile
// succeed.
func TestAttackFederationUnknownKidFlood(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p := ststest.StartIdP(t)
	cl := fedClient(c, "workload")
	trustIssuer(c, p, "k8s", cl.ID)
	waitTrusted(t, n, cl, p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer)))
	before := p.Fetches.Load()

	// A client the issuer does not list is refused before any key is
	// looked at: its random kids cost the upstream nothing (and do not
	// spend the allowed refresh).
	outsider := fedClient(c, "outsider")
	for range 20 {
		forged := p.SignWith(jose.JSONWebKey{Key: p.Key().Key, KeyID: randomKid(), Algorithm: "ES256"}, "JWT",
			p.Kubernetes("prod", "deployer", clusterIssuer))
		wantRefused(t, "a client the issuer does not list", fedExchange(t.Context(), n, outsider, forged), "may not present tokens of issuer")
	}
	if got := p.Fetches.Load() - before; got != 0 {
		t.Fatalf("a client the issuer does not list caused %d upstream requests", got)
	}

	const flood, workers = 400, 8
	var (
		next, refused atomic.Int64
		wg            sync.WaitGroup
		other         sync.Map
	)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= flood {
				forged := p.SignWith(jose.JSONWebKey{Key: p.Key().Key, KeyID: randomKid(), Algorithm: "ES256"}, "JWT",
					p.Kubernetes("prod", "deployer", clusterIssuer))
				r := fedExchange(t.Context(), n, cl, forged)
				if r.Status == http.StatusBadRequest && r.errorCode() == string(oauth.ErrInvalidRequest) {
					refused.Add(1)
				} else {
					other.Store(r.String(), true)
				}
			}
		})
	}
	var legit, slowest time.Duration
	var legitCount int
	for next.Load() < flood {
		start := time.Now()
		r := fedExchange(t.Context(), n, cl, p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer)))
		took := time.Since(start)
		if !granted(r) {
			t.Errorf("legitimate exchange during the flood: %s", r)
		}
		legit += took
		legitCount++
		slowest = max(slowest, took)
	}
	wg.Wait()
	other.Range(func(k, _ any) bool {
		t.Errorf("a forged kid was answered %s", k)
		return true
	})
	if refused.Load() != flood {
		t.Errorf("%d of %d forged tokens refused", refused.Load(), flood)
	}
	fetches := p.Fetches.Load() - before
	if fetches > 2 {
		t.Errorf("%d forged kids caused %d upstream requests; want at most 2", flood, fetches)
	}
	if legitCount == 0 || slowest > 2*time.Second {
		t.Errorf("%d legitimate exchanges during the flood, slowest %v", legitCount, slowest)
	}
	t.Logf("%d forged kids: %d upstream requests; %d legitimate exchanges meanwhile, mean %v, slowest %v",
		flood, fetches, legitCount, legit/time.Duration(max(legitCount, 1)), slowest)
}

// An upstream that answers nothing for 30 s delays only the requests that
// need it, and those get a clear refusal within the fetch timeout (5 s by
// default); exchanges of another issuer's tokens and of this server's
// own tokens made at the same time complete at once.
func TestAttackFederationSlowUpstream(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	slow, fast := ststest.StartIdP(t), ststest.StartIdP(t)
	cl := fedClient(c, "workload")
	trustIssuer(c, slow, "slow", cl.ID)
	trustIssuer(c, fast, "fast", cl.ID)
	var stalled atomic.Int64
	slow.Serve(func(w http.ResponseWriter, r *http.Request) {
		stalled.Add(1)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	// The registry loads every issuer at once: when fast is trusted, so
	// is slow.
	waitTrusted(t, n, cl, fast.Sign(fast.Kubernetes("prod", "deployer", clusterIssuer)))

	// Local tokens: frontend's token, addressed to rs, exchanged by rs.
	const rsResource = "https://rs.fed.test"
	frontend := c.CreateClient("--name", "frontend", "--audience", rsResource)
	rs := c.CreateClient("--name", "rs", "--resource", rsResource, "--audience", fedBackend)

	ctx := t.Context()
	// Several clients' requests need the slow issuer at once: they share
	// one fetch rather than each holding a connection to it.
	const slowCount = 6
	slowDone := make(chan struct{})
	slowReplies := make([]reply, slowCount)
	slowTook := make([]time.Duration, slowCount)
	go func() {
		defer close(slowDone)
		var wg sync.WaitGroup
		for i := range slowCount {
			wg.Go(func() {
				start := time.Now()
				slowReplies[i] = fedExchange(ctx, n, cl, slow.Sign(slow.Kubernetes("prod", "deployer", clusterIssuer)))
				slowTook[i] = time.Since(start)
			})
		}
		wg.Wait()
	}()
	// Let the slow exchange reach the upstream first.
	for deadline := time.Now().Add(3 * time.Second); stalled.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the exchange of the slow issuer's token never reached it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	took := map[string]time.Duration{}
	for i := range 6 {
		wg.Go(func() {
			start := time.Now()
			r := fedExchange(ctx, n, cl, fast.Sign(fast.Kubernetes("prod", "deployer", clusterIssuer)))
			if !granted(r) {
				t.Errorf("another issuer's token meanwhile: %s", r)
			}
			mu.Lock()
			took["fast"+string(rune('0'+i))] = time.Since(start)
			mu.Unlock()
		})
		wg.Go(func() {
			start := time.Now()
			subject := accessToken(t, n.ClientCredentials(ctx, frontend))
			r := n.Exchange(ctx, rs, subject, fedBackend)
			if !granted(r) {
				t.Errorf("a local token meanwhile: %s", r)
			}
			mu.Lock()
			took["local"+string(rune('0'+i))] = time.Since(start)
			mu.Unlock()
		})
	}
	wg.Wait()
	for what, d := range took {
		if d > 2*time.Second {
			t.Errorf("%s took %v while an upstream stalled", what, d)
		}
	}
	select {
	case <-slowDone:
		t.Fatalf("the slow issuer's exchanges ended before the others started waiting: %s", slowReplies[0])
	default:
	}
	<-slowDone
	for i, r := range slowReplies {
		wantRefused(t, "the slow issuer's token", r, slow.URL)
		if slowTook[i] > 7*time.Second {
			t.Errorf("an exchange of the slow issuer's token took %v; the fetch timeout is 5 s", slowTook[i])
		}
	}
	if got := stalled.Load(); got > 2 {
		t.Errorf("%d concurrent exchanges made %d requests to the slow upstream; want them to share one", slowCount, got)
	}
	t.Logf("slow upstream: %d requests to it; refused after %v: %s", stalled.Load(), slowTook[0], slowReplies[0])
}

// Tokens naming an issuer that is not trusted (or one that only looks
// like a trusted one) are refused without any request to it.
func TestAttackFederationUntrustedIssuerNoFetch(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p, stranger := ststest.StartIdP(t), ststest.StartIdP(t)
	cl := fedClient(c, "workload")
	trustIssuer(c, p, "k8s", cl.ID)
	waitTrusted(t, n, cl, p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer)))

	lookalike := p.Kubernetes("prod", "deployer", clusterIssuer)
	lookalike["iss"] = p.URL + "/"
	for name, tok := range map[string]string{
		"a stranger's token":               stranger.Sign(stranger.Kubernetes("prod", "deployer", clusterIssuer)),
		"a stranger's token for the kid":   stranger.SignWith(jose.JSONWebKey{Key: stranger.Key().Key, KeyID: p.Key().KeyID, Algorithm: "ES256"}, "JWT", stranger.Kubernetes("prod", "deployer", clusterIssuer)),
		"the trusted issuer's URL plus /":  stranger.Sign(lookalike),
		"the stranger's URL as the issuer": stranger.Sign(map[string]any{"iss": stranger.URL + "/.well-known/openid-configuration", "sub": "x", "aud": clusterIssuer, "exp": time.Now().Add(time.Hour).Unix()}),
	} {
		wantRefused(t, name, fedExchange(t.Context(), n, cl, tok), "is not trusted")
	}
	auditWith(t, c, cl.ID, "is not trusted")
	if got := stranger.Fetches.Load(); got != 0 {
		t.Errorf("tokens of an untrusted issuer caused %d requests to it", got)
	}
}

// A CEL condition on Kubernetes service account claims admits the prod
// namespace and refuses dev, audited naming the condition; `sts policy
// explain` on the same data shows both decisions: the key that verified
// the token and each rule's value, or the refusal with exit status 1.
func TestAttackFederationKubernetesCondition(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p := ststest.StartIdP(t)
	cl := fedClient(c, "deployer")
	const condition = `subject["kubernetes.io"].namespace == "prod"`
	trustIssuer(c, p, "k8s", cl.ID, "--condition", condition, "--claim", `namespace=subject["kubernetes.io"].namespace`)
	prod := p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer))
	dev := p.Sign(p.Kubernetes("dev", "deployer", clusterIssuer))
	waitTrusted(t, n, cl, prod)

	r := fedExchange(t.Context(), n, cl, prod)
	_, claims, err := jwtParts(accessToken(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "k8s:system:serviceaccount:prod:deployer" || claims["namespace"] != "prod" || claims["aud"] != fedBackend {
		t.Errorf("issued %v", claims)
	}
	// The issued token does not outlive the upstream token: an exchange
	// must not extend a credential's life (a Kubernetes projected token
	// may live only minutes).
	short := p.Kubernetes("prod", "deployer", clusterIssuer)
	short["exp"] = time.Now().Add(90 * time.Second).Unix()
	_, shortClaims, err := jwtParts(accessToken(t, fedExchange(t.Context(), n, cl, p.Sign(short))))
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := shortClaims["exp"].(float64); exp == 0 || int64(exp) > short["exp"].(int64) {
		t.Errorf("issued exp %v outlives the upstream token's %v", shortClaims["exp"], short["exp"])
	}

	wantRefused(t, "the dev namespace", fedExchange(t.Context(), n, cl, dev), `the condition of issuer "k8s" is not met`)
	auditWith(t, c, cl.ID, `the condition of issuer "k8s" is not met`)
	var grantAudited bool
	for _, a := range auditOf(t, c, cl.ID) {
		grantAudited = grantAudited || (a.Action == "token.exchange" && a.Decision == store.DecisionGranted &&
			a.Subject == "k8s:system:serviceaccount:prod:deployer")
	}
	if !grantAudited {
		t.Error("the grant is not audited with the issued subject")
	}

	dir := t.TempDir()
	write := func(name, tok string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return "@" + path
	}
	explain := func(tok string) (explanation, int) {
		t.Helper()
		args := append([]string{"policy", "explain", "--client", cl.ID, "--subject-token", tok, "--audience", fedBackend, "-o", "json"},
			c.storage(filepath.Join(c.logs, "cli-data"))...)
		cmd := exec.Command(c.bin, args...)
		cmd.Env = c.env()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		killWithParent(cmd)
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var x explanation
		if err := json.Unmarshal(stdout.Bytes(), &x); err != nil {
			t.Fatalf("sts policy explain: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
		}
		return x, code
	}

	x, code := explain(write("prod.jwt", prod))
	if code != 0 || !x.Granted || x.Issued["sub"] != "k8s:system:serviceaccount:prod:deployer" {
		t.Errorf("explain of the prod token: exit %d, %+v", code, x)
	}
	var sawKey, sawCondition bool
	for _, s := range x.Steps {
		sawKey = sawKey || strings.Contains(s.Detail, p.Key().KeyID)
		sawCondition = sawCondition || (s.Rule == condition && s.Value == true)
	}
	if !sawKey || !sawCondition {
		t.Errorf("the steps name neither the kid %s nor the condition's value: %+v", p.Key().KeyID, x.Steps)
	}

	x, code = explain(write("dev.jwt", dev))
	if code != 1 || x.Granted || x.Error == nil || !strings.Contains(x.Error.Description, `the condition of issuer "k8s" is not met`) {
		t.Errorf("explain of the dev token: exit %d, %+v", code, x)
	}
	var sawFalse bool
	for _, s := range x.Steps {
		sawFalse = sawFalse || (s.Rule == condition && s.Value == false && s.Outcome == "refused")
	}
	if !sawFalse {
		t.Errorf("the steps do not show the condition false: %+v", x.Steps)
	}

	// Explaining a stranger's token asks nothing of the stranger either.
	stranger := ststest.StartIdP(t)
	x, code = explain(write("stranger.jwt", stranger.Sign(stranger.Kubernetes("prod", "deployer", clusterIssuer))))
	if code != 1 || x.Granted || x.Error == nil || !strings.Contains(x.Error.Description, "is not trusted") || stranger.Fetches.Load() != 0 {
		t.Errorf("explain of an untrusted issuer's token: exit %d, %d requests to it, %+v", code, stranger.Fetches.Load(), x)
	}
}

// explanation is the JSON of `sts policy explain -o json`.
type explanation struct {
	Granted bool           `json:"granted"`
	Error   *oauth.Error   `json:"error"`
	Issued  map[string]any `json:"would_issue"`
	Steps   []struct {
		Step, Outcome, Detail, Rule string
		Value                       any
	} `json:"steps"`
}

// `sts issuer disable` on the server's data is honoured by the running
// server within the sync interval (2 s) and `sts issuer enable` likewise.
func TestAttackFederationDisableIssuer(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p := ststest.StartIdP(t)
	cl := fedClient(c, "workload")
	trustIssuer(c, p, "k8s", cl.ID)
	tok := p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer))
	waitTrusted(t, n, cl, tok)

	c.CLI("issuer", "disable", "k8s")
	r, took := waitFor(t, n, cl, tok, 5*time.Second, func(r reply) bool { return !granted(r) })
	wantRefused(t, "after sts issuer disable", r, "is disabled")
	if took > 3*time.Second {
		t.Errorf("the disabled issuer was honoured after %v", took)
	}
	c.CLI("issuer", "enable", "k8s")
	r, took = waitFor(t, n, cl, tok, 5*time.Second, granted)
	if !granted(r) || took > 3*time.Second {
		t.Errorf("after sts issuer enable: %s after %v", r, took)
	}
}

// An issuer declared in the configuration file (`issuers:`, --config) is
// trusted from the first request, its CEL condition applies, and the CLI
// cannot disable it behind the file's back: the file stays the truth.
func TestAttackFederationConfigFileIssuer(t *testing.T) {
	p := ststest.StartIdP(t)
	cfg := filepath.Join(t.TempDir(), "sts.yaml")
	yaml := `issuers:
  - name: k8s
    issuer: ` + p.URL + `
    token-types: [jwt]
    algorithms: [ES256]
    audiences: [` + clusterIssuer + `]
    clients: ["*"]
    condition: 'subject["kubernetes.io"].namespace == "prod"'
    claims:
      namespace: 'subject["kubernetes.io"].namespace'
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOptions{SQLite: true, Args: []string{"--config", cfg}}, "a")
	n := c.Nodes[0]
	cl := fedClient(c, "workload")

	r := fedExchange(t.Context(), n, cl, p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer)))
	_, claims, err := jwtParts(accessToken(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "k8s:system:serviceaccount:prod:deployer" || claims["namespace"] != "prod" {
		t.Errorf("issued %v", claims)
	}
	wantRefused(t, "the dev namespace", fedExchange(t.Context(), n, cl, p.Sign(p.Kubernetes("dev", "deployer", clusterIssuer))),
		`the condition of issuer "k8s" is not met`)

	if out, err := c.cli("issuer", "disable", "k8s"); err == nil || !strings.Contains(err.Error(), "change it there") {
		t.Errorf("sts issuer disable of the file's issuer: %q, %v", out, err)
	}
	time.Sleep(server.IssuerSyncInterval + 500*time.Millisecond)
	if r := fedExchange(t.Context(), n, cl, p.Sign(p.Kubernetes("prod", "deployer", clusterIssuer))); !granted(r) {
		t.Errorf("after the refused disable: %s", r)
	}
}

// A JWT bearer assertion (RFC 7523) of a trusted issuer is used once
// (§3, "jti"): a replay is refused, so are all but one of many
// concurrent presentations of a fresh assertion, and a replay after the
// server restarted on the same data.
func TestAttackFederationAssertionReplay(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a")
	n := c.Nodes[0]
	p := ststest.StartIdP(t)
	cl := c.CreateClient("--name", "chained", "--grant-type", "jwt-bearer", "--audience", fedBackend, "--allow-impersonation")
	trustIssuer(c, p, "domain-a", cl.ID)
	grant := func(ctx context.Context, n *node, assertion string) reply {
		return n.post(ctx, server.TokenPath, cl, url.Values{
			"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {assertion}, "audience": {fedBackend},
		})
	}
	// Wait for the server to trust the issuer, each try a new assertion.
	var r reply
	for deadline := time.Now().Add(3 * server.IssuerSyncInterval); ; time.Sleep(100 * time.Millisecond) {
		r = grant(t.Context(), n, p.Sign(p.Claims("alice", clusterIssuer)))
		if granted(r) || time.Now().After(deadline) {
			break
		}
	}
	_, claims, err := jwtParts(accessToken(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "domain-a:alice" || claims["aud"] != fedBackend {
		t.Errorf("issued %v", claims)
	}

	assertion := p.Sign(p.Claims("bob", clusterIssuer))
	if r := grant(t.Context(), n, assertion); !granted(r) {
		t.Fatalf("first use: %s", r)
	}
	if r := grant(t.Context(), n, assertion); r.Status != http.StatusBadRequest || !strings.Contains(r.String(), "already used") {
		t.Errorf("replay: %s", r)
	}

	// Concurrent presentations of one fresh assertion: exactly one wins.
	fresh := p.Sign(p.Claims("carol", clusterIssuer))
	const racers = 12
	var wins, replays atomic.Int64
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			switch r := grant(t.Context(), n, fresh); {
			case granted(r):
				wins.Add(1)
			case strings.Contains(r.String(), "already used"):
				replays.Add(1)
			default:
				t.Errorf("concurrent presentation: %s", r)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || replays.Load() != racers-1 {
		t.Errorf("%d concurrent presentations of one assertion: %d granted, %d refused as replays", racers, wins.Load(), replays.Load())
	}

	// The used jti survives a restart.
	n.Kill()
	m, err := c.start("b")
	if m != nil {
		c.Nodes = append(c.Nodes, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{assertion, fresh} {
		if r := grant(t.Context(), m, a); r.Status != http.StatusBadRequest || !strings.Contains(r.String(), "already used") {
			t.Errorf("replay after a restart: %s", r)
		}
	}
}

package e2e_test

// The harness of the multi-instance tests: the real `sts` binary, built
// once, run as several `sts serve` processes on loopback ports against one
// PostgreSQL schema (or one SQLite data directory), driven over HTTP and
// through the operator CLI, with each process's output kept for failure
// messages.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/oauth"
)

// envDatabaseURL names the variable holding the URL of the PostgreSQL test
// database; the multi-instance tests skip when it is unset.
const envDatabaseURL = "STS_TEST_DATABASE_URL"

// clusterIssuer is the issuer every instance of a cluster shares: the
// address of the load balancer in front of them, which these tests do not
// need (each instance is addressed by its own port).
const clusterIssuer = "http://sts.cluster.test"

// stsBinary is the `sts` command, built once per test binary; TestMain
// removes it.
var stsBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildSTS returns the path of the `sts` binary, building it on first use
// from the module that holds this package. It is built without the race
// detector even under `go test -race`: the processes are the system under
// test, not the test.
func buildSTS(t testing.TB) string {
	t.Helper()
	stsBinary.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			stsBinary.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			stsBinary.err = errors.New("not inside a Go module")
			return
		}
		if stsBinary.dir, err = os.MkdirTemp("", "sts-e2e-bin-"); err != nil {
			stsBinary.err = err
			return
		}
		path := filepath.Join(stsBinary.dir, "sts")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/sts")
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			stsBinary.err = fmt.Errorf("go build ./cmd/sts: %v\n%s", err, out)
			return
		}
		stsBinary.path = path
	})
	if stsBinary.err != nil {
		t.Fatal(stsBinary.err)
	}
	return stsBinary.path
}

// testDatabaseURL returns the URL of the test database, or skips.
func testDatabaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envDatabaseURL)
	if u == "" {
		t.Skip(envDatabaseURL + " is not set: set it to a PostgreSQL URL, e.g. " +
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable, to run the multi-instance tests")
	}
	return u
}

// clusterOptions say how to run a cluster.
type clusterOptions struct {
	// SQLite: one data directory instead of PostgreSQL (then only one
	// instance makes sense).
	SQLite bool
	// Args are added to every `sts serve`.
	Args []string
}

// cluster is a set of `sts serve` processes sharing one database.
type cluster struct {
	t      testing.TB
	bin    string
	dbURL  string // with search_path set to the cluster's schema; "" for SQLite
	schema string
	data   string // SQLite: the shared data directory
	kek    string
	args   []string
	logs   string // directory of the processes' output
	// DB queries the cluster's schema directly (PostgreSQL only).
	DB    *pgxpool.Pool
	Nodes []*node
	http  *http.Client
}

// node is one `sts serve` process.
type node struct {
	Name   string
	URL    string // http://127.0.0.1:PORT
	c      *cluster
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
}

// newCluster creates a fresh schema (dropped at the end), migrates it with
// `sts migrate` as an operator would, and starts the named instances at
// once.
func newCluster(t testing.TB, o clusterOptions, names ...string) *cluster {
	t.Helper()
	c := &cluster{
		t:    t,
		bin:  buildSTS(t),
		kek:  base64.StdEncoding.EncodeToString(randomBytes(32)),
		args: o.Args,
		logs: t.TempDir(),
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
	if o.SQLite {
		c.data = t.TempDir()
	} else {
		c.createSchema(testDatabaseURL(t))
	}
	c.CLI("migrate")
	t.Cleanup(func() {
		c.stopAll()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	var wg sync.WaitGroup
	nodes := make([]*node, len(names))
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Go(func() { nodes[i], errs[i] = c.start(name) })
	}
	wg.Wait()
	for _, n := range nodes {
		if n != nil {
			c.Nodes = append(c.Nodes, n)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return c
}

// createSchema makes a schema sts_e2e_<random> and a pool on it; the
// schema is dropped with everything in it when the test ends.
func (c *cluster) createSchema(base string) {
	t := c.t
	c.schema = "sts_e2e_" + hex.EncodeToString(randomBytes(6))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("%s: %v", envDatabaseURL, err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{c.schema}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+ident); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Registered first, so run last: after the processes are gone.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c.DB != nil {
			c.DB.Close()
		}
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", c.schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+ident+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", c.schema, err)
		}
	})
	// pgx passes unknown URL parameters as run-time parameters.
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", envDatabaseURL, err)
	}
	q := u.Query()
	q.Set("search_path", c.schema)
	u.RawQuery = q.Encode()
	c.dbURL = u.String()
	if c.DB, err = pgxpool.New(ctx, c.dbURL); err != nil {
		t.Fatal(err)
	}
}

// storage are the flags that point a command at the cluster's data.
func (c *cluster) storage(dataDir string) []string {
	if c.dbURL != "" {
		return []string{"--database-url", c.dbURL, "--data-dir", dataDir}
	}
	return []string{"--data-dir", c.data}
}

// env is the processes' environment: this one without STS_* settings,
// plus the key-encryption key every instance and the CLI share.
func (c *cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STS_") {
			env = append(env, kv)
		}
	}
	return append(env, "STS_KEY_ENCRYPTION_KEY="+c.kek)
}

var listening = regexp.MustCompile(`Key Bridge STS listening on (\S+)`)

// start runs `sts serve` on a free loopback port and waits until it is
// ready.
func (c *cluster) start(name string) (*node, error) {
	n := &node{Name: name, c: c, log: filepath.Join(c.logs, name+".log"), exited: make(chan struct{})}
	f, err := os.Create(n.log)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	dataDir := filepath.Join(c.logs, name+"-data")
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--issuer", clusterIssuer}, c.storage(dataDir)...)
	args = append(args, c.args...)
	n.cmd = exec.Command(c.bin, args...)
	n.cmd.Env = c.env()
	n.cmd.Stdout, n.cmd.Stderr = f, f
	killWithParent(n.cmd)
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		n.cmd.Wait()
		close(n.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for n.URL == "" {
		b, _ := os.ReadFile(n.log)
		if m := listening.FindSubmatch(b); m != nil {
			n.URL = "http://" + string(m[1])
			break
		}
		select {
		case <-n.exited:
			return n, fmt.Errorf("%s exited before listening:\n%s", name, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%s did not start listening within a minute:\n%s", name, b)
		}
	}
	for {
		resp, err := c.http.Get(n.URL + server.ReadyPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			return n, fmt.Errorf("%s not ready within a minute (%v)", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (n *node) Kill() {
	n.c.t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		n.c.t.Fatalf("kill %s: %v", n.Name, err)
	}
	<-n.exited
}

// Log is what the process printed so far.
func (n *node) Log() string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

// stopAll ends the processes still running: SIGTERM (a graceful shutdown),
// then SIGKILL after 15 s.
func (c *cluster) stopAll() {
	for _, n := range c.Nodes {
		select {
		case <-n.exited:
			continue
		default:
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range c.Nodes {
		select {
		case <-n.exited:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
	}
}

// dumpLogs shows the end of each process's output.
func (c *cluster) dumpLogs() {
	for _, n := range c.Nodes {
		lines := strings.Split(strings.TrimSpace(n.Log()), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("--- output of %s (%s):\n%s", n.Name, n.URL, strings.Join(lines, "\n"))
	}
}

// CLI runs an operator command on the cluster's data and returns its
// standard output; a failure fails the test.
func (c *cluster) CLI(args ...string) string {
	c.t.Helper()
	out, err := c.cli(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

func (c *cluster) cli(args ...string) (string, error) {
	cmd := exec.Command(c.bin, append(args, c.storage(filepath.Join(c.logs, "cli-data"))...)...)
	cmd.Env = c.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	killWithParent(cmd)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("sts %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// CLIJSON runs a command with -o json and decodes its output into v.
func (c *cluster) CLIJSON(v any, args ...string) {
	c.t.Helper()
	out := c.CLI(append(args, "-o", "json")...)
	// Only the JSON document: a command may add a line for people.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(v); err != nil {
		c.t.Fatalf("sts %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// credentials are a client's id and secret.
type credentials struct{ ID, Secret string }

// CreateClient registers a client through the CLI.
func (c *cluster) CreateClient(args ...string) credentials {
	c.t.Helper()
	var v struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	c.CLIJSON(&v, append([]string{"client", "create"}, args...)...)
	if v.ID == "" || v.Secret == "" {
		c.t.Fatalf("client create printed no id or secret: %+v", v)
	}
	return credentials{v.ID, v.Secret}
}

// reply is an HTTP answer, read whole.
type reply struct {
	Status int
	Body   []byte
	Err    error // transport failure: no answer
}

func (r reply) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// errorCode is the OAuth error code of the answer, if any.
func (r reply) errorCode() string {
	var e oauth.Error
	json.Unmarshal(r.Body, &e)
	return string(e.Code)
}

func (n *node) send(ctx context.Context, req *http.Request) reply {
	resp, err := n.c.http.Do(req.WithContext(ctx))
	if err != nil {
		return reply{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Body: b, Err: err}
}

// post sends a form with client_secret_basic authentication.
func (n *node) post(ctx context.Context, path string, cl credentials, form url.Values) reply {
	req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", oauth.BasicAuth(cl.ID, cl.Secret))
	return n.send(ctx, req)
}

// ClientCredentials asks for a client_credentials token.
func (n *node) ClientCredentials(ctx context.Context, cl credentials) reply {
	return n.post(ctx, server.TokenPath, cl, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}})
}

// Exchange asks for an RFC 8693 exchange of subject for resource.
func (n *node) Exchange(ctx context.Context, cl credentials, subject, resource string) reply {
	return n.post(ctx, server.TokenPath, cl, url.Values{
		"grant_type":         {oauth.GrantTypeTokenExchange},
		"subject_token":      {subject},
		"subject_token_type": {oauth.TokenTypeAccessToken},
		"resource":           {resource},
	})
}

// Introspect asks about a token (RFC 7662).
func (n *node) Introspect(ctx context.Context, cl credentials, tok string) (oauth.IntrospectionResponse, reply) {
	r := n.post(ctx, server.IntrospectPath, cl, url.Values{"token": {tok}})
	var ir oauth.IntrospectionResponse
	if r.Err == nil && r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &ir); err != nil {
			r.Err = err
		}
	}
	return ir, r
}

// Revoke revokes a token (RFC 7009).
func (n *node) Revoke(ctx context.Context, cl credentials, tok string) reply {
	return n.post(ctx, server.RevokePath, cl, url.Values{"token": {tok}})
}

// JWKS fetches the published keys.
func (n *node) JWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	req, _ := http.NewRequest(http.MethodGet, n.URL+discovery.JWKSPath, nil)
	r := n.send(ctx, req)
	if r.Err != nil || r.Status != http.StatusOK {
		return nil, fmt.Errorf("%s: JWKS: %v", n.Name, r)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.Body, &set); err != nil {
		return nil, err
	}
	return &set, nil
}

// Register registers a client at POST /register (RFC 7591) with an
// initial access token.
func (n *node) Register(ctx context.Context, iat string, metadata any) reply {
	b, _ := json.Marshal(metadata)
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/register", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+iat)
	return n.send(ctx, req)
}

// accessToken is the access_token of a successful token response.
func accessToken(t testing.TB, r reply) string {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusOK {
		t.Fatalf("token request: %v", r)
	}
	var tr oauth.TokenResponse
	if err := json.Unmarshal(r.Body, &tr); err != nil || tr.AccessToken == "" {
		t.Fatalf("token response %s: %v", r.Body, err)
	}
	return tr.AccessToken
}

// jwtParts decodes a JWT's kid and claims without checking anything.
func jwtParts(tok string) (kid string, claims map[string]any, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", nil, errors.New("not a compact JWS")
	}
	var h struct {
		KID string `json:"kid"`
	}
	for i, dst := range []any{&h, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return "", nil, err
		}
		if err := json.Unmarshal(b, dst); err != nil {
			return "", nil, err
		}
	}
	return h.KID, claims, nil
}

// verifyWith checks a JWT's signature against a JWK set, as a resource
// server would.
func verifyWith(tok string, set *jose.JSONWebKeySet) error {
	obj, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		return err
	}
	kid := obj.Signatures[0].Protected.KeyID
	ks := set.Key(kid)
	if len(ks) == 0 {
		return fmt.Errorf("kid %s is not published", kid)
	}
	_, err = obj.Verify(ks[0])
	return err
}

// mintIAT signs an initial access token for an individual account with its
// shared secret, as the account holder would (HS256; iss the account,
// aud the issuer). It may be called from any goroutine.
func mintIAT(t testing.TB, account, secret string) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Error(err)
		return ""
	}
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{
		"iss": account, "aud": clusterIssuer, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": hex.EncodeToString(randomBytes(16)),
	})
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Error(err)
		return ""
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Error(err)
	}
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// propagation measures, from since, how long until cond holds on each
// node, polling every few milliseconds; a node where it does not hold
// within bound fails the test. It returns the delays by node name.
func propagation(t *testing.T, what string, since time.Time, bound time.Duration, nodes []*node, cond func(ctx context.Context, n *node) (bool, string)) map[string]time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	delays := make([]time.Duration, len(nodes))
	last := make([]string, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			delays[i] = -1
			for ctx.Err() == nil {
				ok, why := cond(ctx, n)
				if ok {
					delays[i] = time.Since(since)
					return
				}
				last[i] = why
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	out := map[string]time.Duration{}
	var report []string
	for i, n := range nodes {
		if delays[i] < 0 {
			t.Errorf("%s: not honoured by %s within %v (last: %s)", what, n.Name, bound, last[i])
			continue
		}
		out[n.Name] = delays[i]
		report = append(report, fmt.Sprintf("%s %v", n.Name, delays[i].Round(100*time.Microsecond)))
	}
	t.Logf("propagation of %s (bound %v): %s", what, bound, strings.Join(report, ", "))
	return out
}

// readLines calls fn on each line of s.
func readLines(s string, fn func(string)) {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
}

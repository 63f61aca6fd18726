package e2e_test

// Scale-out: three `sts serve` processes on one PostgreSQL database behave
// as one server. Each test starts real processes of the real binary
// (cluster_harness_test.go) and drives them over HTTP on loopback and
// through the operator CLI; the PostgreSQL tests skip when
// STS_TEST_DATABASE_URL is unset, and CI always sets it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stsBinary.dir != "" {
		os.RemoveAll(stsBinary.dir)
	}
	os.Exit(code)
}

// Bounds the README states for changes made on one instance (or with the
// CLI) to be honoured by the others. Changes are announced with
// LISTEN/NOTIFY and arrive within milliseconds; the bounds are those of the
// polling fallback, plus a margin for a loaded CI machine.
const (
	// Revocations are polled every second (server.RevocationSyncInterval).
	revocationBound = server.RevocationSyncInterval + 2*time.Second
	// Clients are cached for at most 2 s (store/cached).
	clientBound = 2*time.Second + 2*time.Second
	// Keys are reread every 10 s (server.KeyMaintenanceInterval).
	keyBound = server.KeyMaintenanceInterval + 2*time.Second
)

// unlimitedRegistration lifts the per-account and per-address registration
// limits, which every test here would hit from 127.0.0.1.
var unlimitedRegistration = []string{"--registration-rate-per-account", "1000000", "--registration-rate-per-address", "1000000"}

// TestClusterBehavesAsOneServer registers a client on A, exchanges its token
// on B and introspects the result on C; then it changes things on one
// instance (or with the CLI) and measures how long the others take to
// honour the change; last, it kills A with SIGKILL under load.
func TestClusterBehavesAsOneServer(t *testing.T) {
	testDatabaseURL(t)
	t.Parallel()
	c := newCluster(t, clusterOptions{Args: unlimitedRegistration}, "A", "B", "C")
	A, B, C := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	ctx := t.Context()

	// rs08 exchanges callers' tokens for the backend.
	rs08 := c.CreateClient("--name", "rs08", "--resource", rs08Aud, "--audience", backendAud, "--scope", "api")
	var acct struct {
		ID     string `json:"account_id"`
		Secret string `json:"shared_secret"`
	}
	c.CLIJSON(&acct, "account", "create", "individual", "--name", "Frontend Co")
	frontendMetadata := map[string]any{
		"client_name": "frontend", "grant_types": []string{oauth.GrantTypeClientCredentials},
		"scope": "api", "audiences": []string{rs08Aud},
	}
	var frontend credentials

	ok := t.Run("RegisterOnA_ExchangeOnB_IntrospectOnC", func(t *testing.T) {
		var iat struct {
			IAT string `json:"iat"`
		}
		c.CLIJSON(&iat, "account", "issue-iat", acct.ID, "--issuer", clusterIssuer)
		frontend = registered(t, A.Register(ctx, iat.IAT, frontendMetadata))
		// The caller's token, from A.
		subject := accessToken(t, A.ClientCredentials(ctx, frontend))
		// rs08 exchanges it at B.
		exchanged := accessToken(t, B.Exchange(ctx, rs08, subject, backendAud))
		// The backend introspects the result at C.
		ir, r := C.Introspect(ctx, rs08, exchanged)
		if r.Err != nil || r.Status != http.StatusOK {
			t.Fatalf("introspection at C: %v", r)
		}
		if !ir.Active || ir.Sub != frontend.ID || ir.ClientID != rs08.ID || ir.Iss != clusterIssuer ||
			!slices.Contains([]string(ir.Aud), backendAud) || ir.Act == nil || ir.Act.Subject != rs08.ID {
			t.Fatalf("introspection at C: %s", r.Body)
		}
		// Every instance answers for the same issuer.
		for _, n := range c.Nodes {
			set, err := n.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyWith(exchanged, set); err != nil {
				t.Errorf("the token B issued does not verify against %s's JWKS: %v", n.Name, err)
			}
		}
	})
	if !ok {
		t.FailNow()
	}

	// exchangeRefused: the subject token is refused at n (RFC 8693 §2.2.2).
	exchangeRefused := func(subject string) func(context.Context, *node) (bool, string) {
		return func(ctx context.Context, n *node) (bool, string) {
			r := n.Exchange(ctx, rs08, subject, backendAud)
			return r.Status == http.StatusBadRequest && r.errorCode() == string(oauth.ErrInvalidRequest), r.String()
		}
	}
	inactive := func(tok string) func(context.Context, *node) (bool, string) {
		return func(ctx context.Context, n *node) (bool, string) {
			ir, r := n.Introspect(ctx, rs08, tok)
			return r.Err == nil && r.Status == http.StatusOK && !ir.Active, r.String()
		}
	}
	// accepted: client_credentials with cl succeeds at n.
	accepted := func(ctx context.Context, n *node, cl credentials) bool {
		return n.ClientCredentials(ctx, cl).Status == http.StatusOK
	}
	refusedClient := func(ctx context.Context, n *node, cl credentials) (bool, string) {
		r := n.ClientCredentials(ctx, cl)
		return r.Status == http.StatusUnauthorized && r.errorCode() == string(oauth.ErrInvalidClient), r.String()
	}
	// warm makes every instance hold a fresh copy of the client in its
	// cache and checks that it is accepted everywhere.
	warm := func(t *testing.T, cl credentials) {
		t.Helper()
		for _, n := range c.Nodes {
			if !accepted(ctx, n, cl) {
				t.Fatalf("%s refuses %s before the change", n.Name, cl.ID)
			}
		}
	}

	t.Run("RevokeOnA_RefusedOnBAndC", func(t *testing.T) {
		subject := accessToken(t, A.ClientCredentials(ctx, frontend))
		for _, n := range []*node{B, C} {
			if r := n.Exchange(ctx, rs08, subject, backendAud); r.Status != http.StatusOK {
				t.Fatalf("%s before the revocation: %v", n.Name, r)
			}
		}
		r := A.Revoke(ctx, frontend, subject)
		acked := time.Now()
		if r.Status != http.StatusOK {
			t.Fatalf("revoke at A: %v", r)
		}
		// RFC 7009 §2.2: once A answers, A itself refuses the token.
		if ok, got := exchangeRefused(subject)(ctx, A); !ok {
			t.Fatalf("A accepts the token it just revoked: %s", got)
		}
		propagation(t, "a revocation on A (exchange refused)", acked, revocationBound, []*node{B, C}, exchangeRefused(subject))
		propagation(t, "a revocation on A (introspection inactive)", acked, revocationBound, []*node{B, C}, inactive(subject))
	})

	// A notice lost with a dropped LISTEN connection must not leave a
	// revoked token accepted: the revocation is written straight to the
	// table, with no notification, and the once-a-second poll finds it.
	t.Run("RevocationWithoutNotify_FoundByPolling", func(t *testing.T) {
		subject := accessToken(t, B.ClientCredentials(ctx, frontend))
		_, claims, err := jwtParts(subject)
		if err != nil {
			t.Fatal(err)
		}
		jti, _ := claims["jti"].(string)
		exp, _ := claims["exp"].(float64)
		now := time.Now()
		if _, err := c.DB.Exec(ctx, `INSERT INTO revoked_jtis (jti, expires_at, revoked_at) VALUES ($1, $2, $3)`,
			jti, int64(exp)*1e6, now.UnixMicro()); err != nil {
			t.Fatal(err)
		}
		propagation(t, "a revocation without NOTIFY (polling only)", now, revocationBound, c.Nodes, exchangeRefused(subject))
	})

	t.Run("ClientDisabledWithCLI_RefusedEverywhere", func(t *testing.T) {
		svc := c.CreateClient("--name", "to-disable", "--scope", "api")
		warm(t, svc)
		c.CLI("client", "disable", svc.ID)
		acked := time.Now()
		propagation(t, "a client disabled with the CLI", acked, clientBound, c.Nodes,
			func(ctx context.Context, n *node) (bool, string) { return refusedClient(ctx, n, svc) })
	})

	t.Run("ClientDisabledWithoutNotify_FoundWhenCacheExpires", func(t *testing.T) {
		svc := c.CreateClient("--name", "to-disable-quietly", "--scope", "api")
		warm(t, svc)
		now := time.Now()
		if _, err := c.DB.Exec(ctx, `UPDATE clients SET status = $1 WHERE id = $2`, string(store.ClientDisabled), svc.ID); err != nil {
			t.Fatal(err)
		}
		propagation(t, "a client disabled without NOTIFY (cache expiry only)", now, clientBound, c.Nodes,
			func(ctx context.Context, n *node) (bool, string) { return refusedClient(ctx, n, svc) })
	})

	t.Run("SecretRotatedWithCLI_OldRefusedNewAccepted", func(t *testing.T) {
		old := c.CreateClient("--name", "to-rotate", "--scope", "api")
		warm(t, old)
		var v struct {
			Secret string `json:"client_secret"`
		}
		c.CLIJSON(&v, "client", "rotate-secret", old.ID)
		acked := time.Now()
		rotated := credentials{old.ID, v.Secret}
		if v.Secret == "" || v.Secret == old.Secret {
			t.Fatalf("rotate-secret printed %q", v.Secret)
		}
		propagation(t, "a secret rotated with the CLI", acked, clientBound, c.Nodes,
			func(ctx context.Context, n *node) (bool, string) {
				if ok, got := refusedClient(ctx, n, old); !ok {
					return false, "old secret: " + got
				}
				if r := n.ClientCredentials(ctx, rotated); r.Status != http.StatusOK {
					return false, "new secret: " + r.String()
				}
				return true, ""
			})
	})

	t.Run("KeyRotatedWithCLI_NewKeyPublishedFirstAndVerifiedEverywhere", func(t *testing.T) {
		var keys []struct {
			KID   string `json:"kid"`
			State string `json:"state"`
		}
		c.CLIJSON(&keys, "key", "list")
		var current, next string
		for _, k := range keys {
			switch store.KeyState(k.State) {
			case store.KeyCurrent:
				current = k.KID
			case store.KeyNext:
				next = k.KID
			}
		}
		if current == "" || next == "" {
			t.Fatalf("keys before the rotation: %+v", keys)
		}
		// The key that will sign is in every JWKS before any instance
		// signs with it; all sign with the current key.
		for _, n := range c.Nodes {
			set, err := n.JWKS(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Key(next)) == 0 || len(set.Key(current)) == 0 {
				t.Fatalf("%s does not publish both the current key %s and the next key %s", n.Name, current, next)
			}
			if kid, _, _ := jwtParts(accessToken(t, n.ClientCredentials(ctx, frontend))); kid != current {
				t.Fatalf("%s signs with %s, want the current key %s", n.Name, kid, current)
			}
		}
		var rot struct {
			Current string `json:"current"`
			Next    string `json:"next"`
			Retired string `json:"retired"`
		}
		c.CLIJSON(&rot, "key", "rotate")
		acked := time.Now()
		if rot.Current != next || rot.Retired != current || rot.Next == "" {
			t.Fatalf("key rotate: %+v; want current %s, retired %s", rot, next, current)
		}
		tokens := make(map[string]string) // by instance: a token signed with the new key
		var mu sync.Mutex
		propagation(t, "a key rotation with the CLI (all sign with the new key)", acked, keyBound, c.Nodes,
			func(ctx context.Context, n *node) (bool, string) {
				r := n.ClientCredentials(ctx, frontend)
				if r.Status != http.StatusOK {
					return false, r.String()
				}
				var tr oauth.TokenResponse
				json.Unmarshal(r.Body, &tr)
				kid, _, _ := jwtParts(tr.AccessToken)
				if kid != rot.Current {
					return false, "signs with " + kid
				}
				mu.Lock()
				tokens[n.Name] = tr.AccessToken
				mu.Unlock()
				return true, ""
			})
		propagation(t, "a key rotation with the CLI (new next key published)", acked, keyBound, c.Nodes,
			func(ctx context.Context, n *node) (bool, string) {
				set, err := n.JWKS(ctx)
				if err != nil {
					return false, err.Error()
				}
				return len(set.Key(rot.Next)) == 1 && len(set.Key(rot.Retired)) == 1, "next or retired key not published"
			})
		// A token each instance signed with the new key verifies against
		// every instance's JWKS, and every other instance accepts it as a
		// subject token; so does a token signed before the rotation.
		for signer, tok := range tokens {
			for _, n := range c.Nodes {
				set, err := n.JWKS(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := verifyWith(tok, set); err != nil {
					t.Errorf("a token %s signed does not verify against %s's JWKS: %v", signer, n.Name, err)
				}
				if r := n.Exchange(ctx, rs08, tok, backendAud); r.Status != http.StatusOK {
					t.Errorf("a token %s signed is refused by %s: %v", signer, n.Name, r)
				}
			}
		}
	})

	t.Run("SIGKILLUnderLoad_NoAcknowledgedWriteLost", func(t *testing.T) {
		killUnderLoad(t, c, rs08, frontend, acct.ID, acct.Secret, frontendMetadata)
	})
}

// registered decodes a successful registration.
func registered(t *testing.T, r reply) credentials {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusCreated {
		t.Fatalf("register: %v", r)
	}
	var v struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil || v.ID == "" || v.Secret == "" {
		t.Fatalf("registration response %s: %v", r.Body, err)
	}
	return credentials{v.ID, v.Secret}
}

// outcome is one request of the load, as its sender saw it.
type outcome struct {
	node   string
	sent   time.Time
	status int // 0: no answer
	jti    string
	client string // a registration's client_id
}

// killUnderLoad sends exchanges (and, more slowly, registrations) to all
// three instances, kills A with SIGKILL in the middle, and then checks that
// B and C never stopped answering, and that every exchange and
// registration acknowledged by any instance, A included, is in the
// database: the audit record of each issued token (by jti), each client.
func killUnderLoad(t *testing.T, c *cluster, rs08, frontend credentials, account, accountSecret string, metadata map[string]any) {
	ctx := t.Context()
	A := c.Nodes[0]
	subject := accessToken(t, c.Nodes[1].ClientCredentials(ctx, frontend))
	const (
		before = 1500 * time.Millisecond // of load before the kill
		after  = 2 * time.Second         // and after it
	)
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
		killedAt time.Time
	)
	record := func(o outcome) {
		mu.Lock()
		outcomes = append(outcomes, o)
		mu.Unlock()
	}
	// Two exchanging workers per instance, each cycling over all three.
	for w := range 2 * len(c.Nodes) {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				n := c.Nodes[i%len(c.Nodes)]
				o := outcome{node: n.Name, sent: time.Now()}
				r := n.Exchange(ctx, rs08, subject, backendAud)
				if r.Err == nil {
					o.status = r.Status
					if r.Status == http.StatusOK {
						var tr oauth.TokenResponse
						json.Unmarshal(r.Body, &tr)
						_, claims, err := jwtParts(tr.AccessToken)
						if err != nil {
							t.Errorf("%s issued %q: %v", n.Name, tr.AccessToken, err)
						}
						o.jti, _ = claims["jti"].(string)
					}
				}
				record(o)
			}
		})
	}
	// One registering worker, cycling over the instances.
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			n := c.Nodes[i%len(c.Nodes)]
			md := maps(metadata, "client_name", fmt.Sprintf("load-%d", i))
			o := outcome{node: n.Name, sent: time.Now()}
			r := n.Register(ctx, mintIAT(t, account, accountSecret), md)
			if r.Err == nil {
				o.status = r.Status
				if r.Status == http.StatusCreated {
					var v struct {
						ID string `json:"client_id"`
					}
					json.Unmarshal(r.Body, &v)
					o.client = v.ID
				}
			}
			record(o)
			time.Sleep(20 * time.Millisecond)
		}
	})
	time.Sleep(before)
	A.Kill()
	killedAt = time.Now() // read only once the workers are done
	time.Sleep(after)
	stop.Store(true)
	wg.Wait()

	var jtis, clients []string
	perNode := map[string][2]int{} // acknowledged before, after the kill
	for _, o := range outcomes {
		acked := o.status == http.StatusOK || o.status == http.StatusCreated
		if o.node != A.Name && !acked {
			t.Errorf("%s answered %d (sent %v after the kill)", o.node, o.status, o.sent.Sub(killedAt))
		}
		if !acked {
			continue
		}
		if o.jti != "" {
			jtis = append(jtis, o.jti)
		}
		if o.client != "" {
			clients = append(clients, o.client)
		}
		k := perNode[o.node]
		if o.sent.After(killedAt) {
			k[1]++
		} else {
			k[0]++
		}
		perNode[o.node] = k
	}
	t.Logf("acknowledged requests (before, after the SIGKILL of A): %v; %d exchanges, %d registrations", perNode, len(jtis), len(clients))
	for _, n := range c.Nodes[1:] {
		if perNode[n.Name][1] == 0 {
			t.Errorf("%s acknowledged nothing after A was killed", n.Name)
		}
	}
	if perNode[A.Name][0] == 0 {
		t.Fatalf("A acknowledged nothing before it was killed: the test proves nothing")
	}

	// Every acknowledged exchange has its audit record, whichever instance
	// wrote it (RFC 8693 issuances are audited before they are answered).
	rows, err := c.DB.Query(ctx, `SELECT jti FROM audit WHERE action = 'token.exchange' AND decision = $1 AND jti = ANY($2)`,
		store.DecisionGranted, jtis)
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for rows.Next() {
		var jti string
		if err := rows.Scan(&jti); err != nil {
			t.Fatal(err)
		}
		audited[jti] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, j := range jtis {
		if !audited[j] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged exchanges have no audit record", missing, len(jtis))
	}
	// The instances share one host, so one hash chain: their audit
	// transactions took turns on its head under load, A's were cut by
	// the kill, and the chain still verifies.
	verifyAudit(t, c.dbURL)
	var found int
	if err := c.DB.QueryRow(ctx, `SELECT count(*) FROM clients WHERE id = ANY($1)`, clients).Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != len(clients) {
		t.Errorf("%d of %d acknowledged registrations are not in the database", len(clients)-found, len(clients))
	}
	// The survivors still serve: a client registered on B works on C.
	cl := registered(t, c.Nodes[1].Register(ctx, mintIAT(t, account, accountSecret), maps(metadata, "client_name", "after-the-kill")))
	if r := c.Nodes[2].Exchange(ctx, rs08, accessToken(t, c.Nodes[2].ClientCredentials(ctx, cl)), backendAud); r.Status != http.StatusOK {
		t.Errorf("after the kill: %v", r)
	}
}

// maps copies m with k set to v.
func maps(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

// TestClusterKeyRotationHasOneLeader runs three instances with a short
// rotation period: the keys are rotated on schedule by one instance only
// (the holder of the advisory lock), at most once per period, never by
// several; when the leader is killed, another instance takes over. At every
// moment, the key any instance signs with is in every instance's JWKS.
func TestClusterKeyRotationHasOneLeader(t *testing.T) {
	testDatabaseURL(t)
	t.Parallel()
	const period = 5 * time.Second
	c := newCluster(t, clusterOptions{Args: []string{"--key-rotation-period", period.String()}}, "A", "B", "C")
	ctx := t.Context()
	caller := c.CreateClient("--name", "caller", "--scope", "api")

	// Sample every instance's signing key against every instance's JWKS
	// while the keys rotate.
	var (
		samples    atomic.Int64
		violations []string
		vmu        sync.Mutex
	)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for sampleCtx.Err() == nil {
			for _, n := range c.Nodes {
				r := n.ClientCredentials(sampleCtx, caller)
				if r.Status != http.StatusOK {
					continue // a killed instance
				}
				var tr oauth.TokenResponse
				json.Unmarshal(r.Body, &tr)
				kid, _, _ := jwtParts(tr.AccessToken)
				for _, m := range c.Nodes {
					set, err := m.JWKS(sampleCtx)
					if err != nil {
						continue
					}
					samples.Add(1)
					if len(set.Key(kid)) == 0 {
						vmu.Lock()
						violations = append(violations, fmt.Sprintf("%s signs with %s, which %s does not publish", n.Name, kid, m.Name))
						vmu.Unlock()
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// rotations are the rotations each instance logged.
	rotations := func() map[string]int {
		out := map[string]int{}
		for _, n := range c.Nodes {
			readLines(n.Log(), func(l string) {
				if strings.Contains(l, `msg="signing keys rotated"`) {
					out[n.Name]++
				}
			})
		}
		return out
	}
	total := func(m map[string]int) (s int) {
		for _, v := range m {
			s += v
		}
		return s
	}
	// waitRotations waits until n rotations have been logged.
	waitRotations := func(n int, within time.Duration) map[string]int {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			r := rotations()
			if total(r) >= n {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d scheduled rotations within %v, want %d: %v", total(r), within, n, r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The first rotation comes at the leader's first maintenance tick
	// after the first key has signed for a period.
	start := time.Now()
	first := waitRotations(2, 2*(period+server.KeyMaintenanceInterval)+5*time.Second)
	if len(first) != 1 {
		t.Fatalf("scheduled rotations by several instances: %v", first)
	}
	var leader *node
	for _, n := range c.Nodes {
		if first[n.Name] > 0 {
			leader = n
		}
	}
	t.Logf("leader %s rotated %d times in %v", leader.Name, first[leader.Name], time.Since(start).Round(time.Millisecond))

	// The leader dies; its session ends, the advisory lock is freed and
	// another instance takes the role (retrying every 5 s).
	leader.Kill()
	killed := time.Now()
	done := total(first)
	after := waitRotations(done+1, 5*time.Second+period+2*server.KeyMaintenanceInterval+5*time.Second)
	t.Logf("after the leader was killed: %v, first new rotation %v later", after, time.Since(killed).Round(time.Millisecond))
	var successors []string
	for name, k := range after {
		if name != leader.Name && k > 0 {
			successors = append(successors, name)
		}
	}
	if len(successors) != 1 || after[leader.Name] != first[leader.Name] {
		t.Errorf("rotations after the leader died: %v; want them by exactly one other instance", after)
	}
	stopSampling()
	sampler.Wait()

	// The database agrees with the logs: one retired key per logged
	// rotation, no rotation lost or doubled, and never two within a period.
	var acts []int64
	rows, err := c.DB.Query(ctx, `SELECT activated_at FROM signing_keys WHERE state <> $1 ORDER BY activated_at`, string(store.KeyNext))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a int64
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	final := total(rotations())
	var retired int
	if err := c.DB.QueryRow(ctx, `SELECT count(*) FROM signing_keys WHERE state = $1`, string(store.KeyRetired)).Scan(&retired); err != nil {
		t.Fatal(err)
	}
	if retired != final || len(acts) != final+1 {
		t.Errorf("%d retired keys and %d keys that signed, for %d logged rotations", retired, len(acts), final)
	}
	elapsed := time.Since(start)
	if most := int(elapsed/period) + 1; final > most {
		t.Errorf("%d rotations in %v with a period of %v: more than one per period", final, elapsed, period)
	}
	var gaps []string
	for i := 1; i < len(acts); i++ {
		gap := time.Duration(acts[i]-acts[i-1]) * time.Microsecond
		gaps = append(gaps, gap.Round(time.Millisecond).String())
		if gap < period {
			t.Errorf("key %d signed only %v before the next rotation (period %v)", i, gap, period)
		}
	}
	t.Logf("%d rotations in %v (period %v, maintenance every %v); times each key signed: %s",
		final, elapsed.Round(time.Millisecond), period, server.KeyMaintenanceInterval, strings.Join(gaps, ", "))
	t.Logf("%d samples of (signing key, JWKS) across instances", samples.Load())
	if samples.Load() == 0 {
		t.Error("no samples of signing keys")
	}
	for _, v := range violations {
		t.Error(v)
	}
}

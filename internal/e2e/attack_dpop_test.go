package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

// TestAttackDPoPAcrossInstances runs two `sts serve --dpop-nonce`
// processes on one PostgreSQL database: the nonce one instance hands out
// is accepted by the other (derived from the shared key-encryption key,
// not stored), and a proof accepted by one is a replay at the other.
func TestAttackDPoPAcrossInstances(t *testing.T) {
	c := newCluster(t, clusterOptions{Args: []string{"--dpop-nonce"}}, "a", "b")
	a, b := c.Nodes[0], c.Nodes[1]
	cl := c.CreateClient("--name", "dpop-device")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	proof := func(nonce string) string {
		p, err := dpop.NewProof(key, "", http.MethodPost, clusterIssuer+server.TokenPath, dpop.ProofOptions{Nonce: nonce})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	post := func(n *node, p string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, n.URL+server.TokenPath, strings.NewReader(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", oauth.BasicAuth(cl.ID, cl.Secret))
		req.Header.Set(dpop.Header, p)
		resp, err := c.http.Do(req.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	status, body, h := post(a, proof(""))
	nonce := h.Get(dpop.NonceHeader)
	if status != http.StatusBadRequest || !strings.Contains(body, "use_dpop_nonce") || nonce == "" {
		t.Fatalf("without a nonce: %d %s (DPoP-Nonce %q)", status, body, nonce)
	}
	p := proof(nonce)
	if status, body, _ := post(a, p); status != http.StatusOK || !strings.Contains(body, `"token_type":"DPoP"`) {
		t.Fatalf("with the nonce at a: %d %s", status, body)
	}
	if status, body, _ := post(b, p); status != http.StatusBadRequest || !strings.Contains(body, "invalid_dpop_proof") || !strings.Contains(body, "already used") {
		t.Fatalf("replay at b: %d %s", status, body)
	}
	if status, body, _ := post(b, proof(nonce)); status != http.StatusOK {
		t.Fatalf("a's nonce at b: %d %s", status, body)
	}
	// The replay is audited (written by b, read from the shared database).
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := c.DB.QueryRow(t.Context(), `SELECT count(*) FROM audit WHERE client_id = $1 AND decision = $2 AND error = 'invalid_dpop_proof' AND detail LIKE '%already used%'`,
			cl.ID, store.DecisionRefused).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replay at b is not audited")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

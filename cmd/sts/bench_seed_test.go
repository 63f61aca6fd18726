package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
)

// `sts bench seed` adds clients that authenticate with the secret it
// prints, and revocations the store lists as unexpired.
func TestBenchSeed(t *testing.T) {
	c := newCLI(t, testKEK)
	c.fail("--clients", "bench", "seed")
	out := c.ok("bench", "seed", "--clients", "3", "--revocations", "5", "--prefix", "s-", "--secret", "s3cret-of-the-seed")
	if !strings.Contains(out, "clients: 3 in") || !strings.Contains(out, "revocations: 5 in") {
		t.Fatalf("output %q", out)
	}
	var list []clientView
	c.okJSON(&list, "client", "list", "-o", "json")
	if len(list) != 3 {
		t.Fatalf("%d clients listed after seeding 3", len(list))
	}
	revs, err := c.env().Store.ListRevocations(t.Context(), time.Time{}, time.Now())
	if err != nil || len(revs) != 5 {
		t.Fatalf("%d unexpired revocations after seeding 5 (%v)", len(revs), err)
	}
	// The last seeded client obtains a token with the printed secret.
	endpoint := startServer(t, c)
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", oauth.BasicAuth("s-0000002", "s3cret-of-the-seed"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr oauth.TokenResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tr) != nil || tr.AccessToken == "" {
		t.Fatalf("client_credentials of a seeded client: %d %+v", resp.StatusCode, tr)
	}
	// Seeding the same IDs again is refused.
	c.fail("exist", "bench", "seed", "--clients", "1", "--prefix", "s-")
}

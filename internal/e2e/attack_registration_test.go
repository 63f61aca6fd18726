package e2e_test

// Issue 8, findings 5, 6 (registration access token) and 8 (registration
// limiter), each attack run over HTTP against a real `sts serve` process
// on SQLite, with the operator CLI where an operator acts.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// registration is the part of an RFC 7591 answer these tests use.
type registration struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret"`
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
	Status                  string `json:"status"`
	AllowImpersonation      bool   `json:"allow_impersonation"`
}

func (r registration) credentials() credentials { return credentials{r.ClientID, r.ClientSecret} }

// mustRegister requires a 201 and decodes it.
func mustRegister(t *testing.T, r reply) registration {
	t.Helper()
	if r.Err != nil || r.Status != http.StatusCreated {
		t.Fatalf("register: %v", r)
	}
	var reg registration
	if err := json.Unmarshal(r.Body, &reg); err != nil || reg.ClientID == "" || reg.ClientSecret == "" {
		t.Fatalf("registration response %s: %v", r.Body, err)
	}
	return reg
}

// account creates an individual account with the CLI.
func newIndividual(t *testing.T, c *cluster, name string) (id, secret string) {
	t.Helper()
	var a struct {
		ID     string `json:"account_id"`
		Secret string `json:"shared_secret"`
	}
	c.CLIJSON(&a, "account", "create", "individual", "--name", name)
	return a.ID, a.Secret
}

// iatWith signs an initial access token for an individual account, as its
// holder would, with extra claims (e.g. the software_id and
// hardware_address of the one device it is for).
func iatWith(t *testing.T, account, secret string, extra map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{
		"iss": account, "aud": clusterIssuer, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": hex.EncodeToString(randomBytes(16)),
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// radio is the metadata of one device of the account's software.
func radio(hw string) map[string]any {
	return map[string]any{"client_name": "radio " + hw, "software_id": "cbsd-fw", "hardware_address": hw}
}

// naming are the IAT claims that name the device of md.
func naming(md map[string]any, extra ...any) map[string]any {
	out := map[string]any{"software_id": md["software_id"], "hardware_address": md["hardware_address"]}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i].(string)] = extra[i+1]
	}
	return out
}

// readRegistration is RFC 7592 §2.1: GET the registration with its token.
func (n *node) readRegistration(ctx context.Context, reg registration, token string) reply {
	req, _ := http.NewRequest(http.MethodGet, n.URL+"/register/"+reg.ClientID, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	return n.send(ctx, req)
}

// sendRaw posts a body to /register with a bearer token.
func (n *node) sendRaw(ctx context.Context, bearer string, body []byte) reply {
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/register", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	return n.send(ctx, req)
}

// TestAttackRegistration: finding 5, re-registration takeover, and the
// registration access token of finding 6, on one server with
// --iat-required-claims.
func TestAttackRegistration(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true, Args: append([]string{"--iat-required-claims", "spectrum=fcc_id"}, unlimitedRegistration...)}, "a")
	n := c.Nodes[0]
	ctx := t.Context()

	// One IAT per device, all of one account (the README's model): the
	// IAT of device A, or any IAT of the account that names no device,
	// must not take over device B.
	t.Run("TakeoverWithAnotherIATOfTheAccount", func(t *testing.T) {
		acct, secret := newIndividual(t, c, "Takeover Co")
		mdA, mdB := radio("02:00:00:00:00:0a"), radio("02:00:00:00:00:0b")
		mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(mdA)), mdA))
		victim := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(mdB)), mdB))
		for name, iat := range map[string]string{
			"IAT of device A":      iatWith(t, acct, secret, naming(mdA)),
			"IAT naming no device": iatWith(t, acct, secret, nil),
		} {
			r := n.Register(ctx, iat, mdB)
			if r.Status != http.StatusBadRequest || r.errorCode() != "invalid_client_metadata" {
				t.Errorf("%s re-registered device B: %v", name, r)
			}
			// The IAT was not spent: it still registers a new client.
			if name == "IAT naming no device" {
				mustRegister(t, n.Register(ctx, iat, map[string]any{"client_name": "new device"}))
			}
		}
		if r := n.ClientCredentials(ctx, victim.credentials()); r.Status != http.StatusOK {
			t.Errorf("the victim's secret after the attempts: %v", r)
		}
		if r := n.readRegistration(ctx, victim, victim.RegistrationAccessToken); r.Status != http.StatusOK {
			t.Errorf("the victim's registration access token after the attempts: %v", r)
		}
		// The device itself, having lost its secret, re-registers with a
		// new IAT naming it, and keeps its client id.
		again := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(mdB)), mdB))
		if again.ClientID != victim.ClientID {
			t.Errorf("the device's own re-registration made %s, want %s", again.ClientID, victim.ClientID)
		}
		if r := n.ClientCredentials(ctx, again.credentials()); r.Status != http.StatusOK {
			t.Errorf("the re-registered device's secret: %v", r)
		}
	})

	// An operator granted a device impersonation; a re-registration (even
	// a legitimate one) does not carry it over, and cannot ask to keep it.
	t.Run("ImpersonationNotCarriedOver", func(t *testing.T) {
		acct, secret := newIndividual(t, c, "Gateway Co")
		md := radio("02:00:00:00:00:1a")
		gw := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md)), md))
		// The operator's grant (the portal's edit), written to the database
		// the server uses.
		st, err := sqlite.Open(ctx, filepath.Join(c.data, "sts.db"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.UpdateClient(ctx, gw.ClientID, func(cl *store.Client) error {
			cl.AllowImpersonation = true
			return nil
		})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		keep := map[string]any{"allow_impersonation": true, "registration_access_token": gw.RegistrationAccessToken}
		for k, v := range md {
			keep[k] = v
		}
		if r := n.Register(ctx, iatWith(t, acct, secret, naming(md)), keep); r.Status == http.StatusCreated {
			t.Errorf("a re-registration kept the operator's impersonation grant: %v", r)
		}
		again := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md)), md))
		var shown struct {
			AllowImpersonation bool `json:"allow_impersonation"`
		}
		c.CLIJSON(&shown, "client", "show", gw.ClientID)
		if again.AllowImpersonation || shown.AllowImpersonation {
			t.Errorf("after re-registration: allow_impersonation %t (answer), %t (stored)", again.AllowImpersonation, shown.AllowImpersonation)
		}
	})

	// --iat-required-claims: the claim a device was registered with is
	// compared on every re-registration.
	t.Run("RequiredClaimMismatchRefused", func(t *testing.T) {
		acct, secret := newIndividual(t, c, "Spectrum Co")
		md := radio("02:00:00:00:00:2a")
		md["scope"] = "spectrum"
		dev := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md, "fcc_id", "FCC-REAL")), md))
		r := n.Register(ctx, iatWith(t, acct, secret, naming(md, "fcc_id", "FCC-FORGED")), md)
		if r.Status != http.StatusUnauthorized || r.errorCode() != "invalid_token" {
			t.Errorf("re-registration with another fcc_id: %v", r)
		}
		if r := n.ClientCredentials(ctx, dev.credentials()); r.Status != http.StatusOK {
			t.Errorf("the device's secret after the refused re-registration: %v", r)
		}
		mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md, "fcc_id", "FCC-REAL")), md))
	})

	// `sts client rotate-secret` replaces the registration access token
	// too: the old one, which may have leaked with the secret, is refused.
	t.Run("RotateSecretReplacesRegistrationToken", func(t *testing.T) {
		acct, secret := newIndividual(t, c, "Rotate Co")
		md := radio("02:00:00:00:00:3a")
		dev := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md)), md))
		if r := n.readRegistration(ctx, dev, dev.RegistrationAccessToken); r.Status != http.StatusOK {
			t.Fatalf("registration access token before the rotation: %v", r)
		}
		var rotated struct {
			Secret string `json:"client_secret"`
			RAT    string `json:"registration_access_token"`
		}
		c.CLIJSON(&rotated, "client", "rotate-secret", dev.ClientID)
		if rotated.RAT == "" || rotated.RAT == dev.RegistrationAccessToken {
			t.Fatalf("rotate-secret printed registration_access_token %q", rotated.RAT)
		}
		// The server sees a change made with the CLI within its client
		// cache's bound.
		var last reply
		deadline := time.Now().Add(clientBound)
		for {
			last = n.readRegistration(ctx, dev, dev.RegistrationAccessToken)
			if last.Status == http.StatusUnauthorized || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if last.Status != http.StatusUnauthorized || last.errorCode() != "invalid_token" {
			t.Errorf("the old registration access token %v after rotate-secret: %v", clientBound, last)
		}
		if r := n.readRegistration(ctx, dev, rotated.RAT); r.Status != http.StatusOK {
			t.Errorf("the new registration access token: %v", r)
		}
	})
}

// TestAttackRegistrationReapproval: under --require-approval, a
// re-registration that renames an approved client (and comes without its
// registration access token) sends it back to pending.
func TestAttackRegistrationReapproval(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true, Args: append([]string{"--require-approval"}, unlimitedRegistration...)}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	acct, secret := newIndividual(t, c, "Approval Co")
	md := radio("02:00:00:00:00:4a")
	dev := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md)), md))
	if dev.Status != "pending" {
		t.Fatalf("new registration: %s, want pending", dev.Status)
	}
	c.CLI("client", "approve", dev.ClientID)
	md["client_name"] = "a name the operator never approved"
	again := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, naming(md)), md))
	if again.ClientID != dev.ClientID || again.Status != "pending" {
		t.Errorf("changed re-registration: %s %s, want %s pending", again.ClientID, again.Status, dev.ClientID)
	}
	if r := n.ClientCredentials(ctx, again.credentials()); r.Status != http.StatusUnauthorized {
		t.Errorf("a pending client obtained a token: %v", r)
	}
}

// TestAttackRegistrationLimiterJunkFirst: finding 8. 60 junk requests from
// one address (all callers behind a load balancer share one) do not stop a
// valid IAT from the same address; junk beyond the limit is 429.
func TestAttackRegistrationLimiterJunkFirst(t *testing.T) {
	c := newCluster(t, clusterOptions{SQLite: true}, "a") // default limits: 60 per address, 30 per account
	n := c.Nodes[0]
	ctx := t.Context()
	acct, secret := newIndividual(t, c, "Behind The LB Co")
	for i := range 60 {
		if r := n.sendRaw(ctx, "junk", []byte(`{}`)); r.Status != http.StatusUnauthorized {
			t.Fatalf("junk request %d: %v", i, r)
		}
	}
	// The bucket refills at one a second while the junk is sent: the
	// limit shows within a few more.
	limited := false
	for i := 0; i < 100 && !limited; i++ {
		r := n.sendRaw(ctx, "junk", []byte(`{}`))
		limited = r.Status == http.StatusTooManyRequests
		if !limited && r.Status != http.StatusUnauthorized {
			t.Fatalf("junk request %d: %v", 61+i, r)
		}
	}
	if !limited {
		t.Error("160 junk requests from one address were never limited")
	}
	mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, nil), map[string]any{"client_name": "after the junk"}))
}

// TestAttackRegistrationTokenExpires: finding 6. A registration access
// token stops working after --registration-token-ttl.
func TestAttackRegistrationTokenExpires(t *testing.T) {
	const ttl = 3 * time.Second
	c := newCluster(t, clusterOptions{SQLite: true, Args: []string{"--registration-token-ttl", ttl.String()}}, "a")
	n := c.Nodes[0]
	ctx := t.Context()
	acct, secret := newIndividual(t, c, "Expiry Co")
	registeredAt := time.Now()
	dev := mustRegister(t, n.Register(ctx, iatWith(t, acct, secret, nil), map[string]any{"client_name": "expiring"}))
	time.Sleep(time.Until(registeredAt.Add(ttl + time.Second)))
	if r := n.readRegistration(ctx, dev, dev.RegistrationAccessToken); r.Status != http.StatusUnauthorized || r.errorCode() != "invalid_token" {
		t.Errorf("registration access token past its lifetime: %v, want 401 invalid_token", r)
	}
}

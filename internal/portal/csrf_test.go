package portal

import (
	"encoding/base64"
	"encoding/binary"
	"testing"
	"time"
)

func TestSigninToken(t *testing.T) {
	p := &Portal{csrfKey: []byte("0123456789abcdef0123456789abcdef")}
	other := &Portal{csrfKey: []byte("another key, another server.....")}
	nonce, nonce2 := randomToken(), randomToken()
	tok := p.signinToken(nonce, t0)
	if !p.checkSigninToken(nonce, tok, t0) || !p.checkSigninToken(nonce, tok, t0.Add(signinTokenTTL-time.Second)) {
		t.Fatal("a fresh token for its cookie is refused")
	}
	// A token whose expiry is moved: the MAC covers it.
	b, _ := base64.RawURLEncoding.DecodeString(tok)
	binary.BigEndian.PutUint64(b[:8], uint64(t0.Add(100*signinTokenTTL).Unix()))
	moved := base64.RawURLEncoding.EncodeToString(b)
	for name, c := range map[string]struct {
		p            *Portal
		nonce, token string
		now          time.Time
	}{
		"expired":                  {p, nonce, tok, t0.Add(signinTokenTTL)},
		"another cookie":           {p, nonce2, tok, t0},
		"another server's key":     {other, nonce, tok, t0},
		"expiry moved":             {p, nonce, moved, t0.Add(2 * signinTokenTTL)},
		"double submit":            {p, nonce, nonce, t0},
		"no cookie":                {p, "", tok, t0},
		"no token":                 {p, nonce, "", t0},
		"garbage":                  {p, nonce, "!!!", t0},
		"truncated":                {p, nonce, tok[:len(tok)-2], t0},
		"cookie of the wrong size": {p, nonce + "A", p.signinToken(nonce+"A", t0), t0},
	} {
		if c.p.checkSigninToken(c.nonce, c.token, c.now) {
			t.Errorf("%s: accepted", name)
		}
	}
}

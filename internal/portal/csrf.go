package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// The sign-in form's CSRF token. There is no session yet to bind it to, so
// it is bound to a pre-session cookie instead: the browser holds a random
// value in the cookie signinCookie, and the form carries
//
//	base64url( expiry (8 bytes, Unix seconds, big-endian) ‖
//	           HMAC-SHA256(key, "sts portal sign-in" ‖ 0 ‖ expiry ‖ cookie value) )
//
// under a key only the server knows (derived from the key-encryption key,
// so every instance sharing it accepts the others' forms). A page on
// another site can neither read nor set the cookie (HttpOnly,
// SameSite=Strict, Path=/portal), and without the key it cannot make a
// token for a cookie value of its own: unlike a plain double submit, an
// equal cookie and field are not enough (OWASP CSRF Prevention Cheat
// Sheet, "Signed Double-Submit Cookie").

// signinTokenTTL is how long a sign-in form may be left open.
const signinTokenTTL = time.Hour

const signinMACLabel = "sts portal sign-in\x00"

// signinNonceLen is the length of the cookie value: 32 random bytes,
// base64url without padding.
const signinNonceLen = 43

func (p *Portal) signinMAC(nonce string, exp int64) []byte {
	m := hmac.New(sha256.New, p.csrfKey)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp))
	m.Write([]byte(signinMACLabel))
	m.Write(b[:])
	m.Write([]byte(nonce))
	return m.Sum(b[:])
}

// signinToken is the form token for the cookie value nonce, valid until
// now+signinTokenTTL.
func (p *Portal) signinToken(nonce string, now time.Time) string {
	return base64.RawURLEncoding.EncodeToString(p.signinMAC(nonce, now.Add(signinTokenTTL).Unix()))
}

// checkSigninToken reports whether token was made by this server for the
// cookie value nonce and has not expired.
func (p *Portal) checkSigninToken(nonce, token string, now time.Time) bool {
	if len(nonce) != signinNonceLen || len(token) > 100 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(b[:8]))
	if now.Unix() >= exp {
		return false
	}
	return hmac.Equal(p.signinMAC(nonce, exp), b)
}

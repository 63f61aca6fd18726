package dpop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// HMACNonces are stateless server nonces: a nonce names a time window and
// carries an HMAC of it under a secret key, so every instance that shares
// the key issues and accepts the same nonces without storing any. A nonce
// is accepted during its window and the next one, so it lives between one
// and two windows.
type HMACNonces struct {
	key    []byte
	window time.Duration
}

// NewHMACNonces returns nonces keyed by key (at least 32 random bytes,
// shared by all instances) that change every window (a minute is a good
// value; zero means one minute).
func NewHMACNonces(key []byte, window time.Duration) *HMACNonces {
	if window <= 0 {
		window = time.Minute
	}
	return &HMACNonces{key: append([]byte(nil), key...), window: window}
}

func (n *HMACNonces) mac(slot uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], slot)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("dpop-nonce\x00"))
	m.Write(b[:])
	out := make([]byte, 0, 8+16)
	out = append(out, b[:]...)
	return append(out, m.Sum(nil)[:16]...)
}

func (n *HMACNonces) slot(now time.Time) uint64 {
	return uint64(now.UnixNano() / int64(n.window))
}

// Nonce returns the nonce of now's window.
func (n *HMACNonces) Nonce(now time.Time) string {
	return base64.RawURLEncoding.EncodeToString(n.mac(n.slot(now)))
}

// Valid reports whether nonce is the nonce of now's window or the one
// before.
func (n *HMACNonces) Valid(nonce string, now time.Time) bool {
	if len(nonce) != 32 { // 24 bytes in base64url
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		return false
	}
	slot := binary.BigEndian.Uint64(raw[:8])
	cur := n.slot(now)
	if slot != cur && slot+1 != cur {
		return false
	}
	return hmac.Equal(raw, n.mac(slot))
}

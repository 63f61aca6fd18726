package portal

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// PasswordParams are the argon2id cost parameters of new password hashes.
// Verification reads the parameters from the stored hash, so that hashes
// made with other parameters keep working.
type PasswordParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
}

// DefaultPasswordParams are OWASP's argon2id configuration (Password
// Storage Cheat Sheet, "Argon2id": "a minimum configuration of 19 MiB of
// memory, an iteration count of 2, and 1 degree of parallelism",
// https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id).
// The memory of one check is what a sign-in costs the server, so it is
// kept at that floor rather than RFC 9106 §4's 64 MiB or 2 GiB options:
// the portal bounds concurrent checks (see hashGate), not their number.
var DefaultPasswordParams = PasswordParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}

const (
	saltLen = 16
	hashLen = 32
	// Bounds on parameters read from a stored hash, so that a tampered or
	// corrupt record cannot make a sign-in allocate without limit.
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 16
)

var phcB64 = base64.RawStdEncoding

// HashPassword returns the argon2id hash of password in PHC string format:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (salt and hash in base64
// without padding, as the PHC string format specifies).
func HashPassword(password string, p PasswordParams) (string, error) {
	if p.Time == 0 || p.MemoryKiB < 8*uint32(p.Threads) || p.Threads == 0 {
		return "", fmt.Errorf("invalid argon2id parameters %+v", p)
	}
	salt := make([]byte, saltLen)
	rand.Read(salt)
	h := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, hashLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Time, p.Threads, phcB64.EncodeToString(salt), phcB64.EncodeToString(h)), nil
}

// CheckPassword reports whether password matches the PHC string phc; the
// comparison is in constant time. A malformed hash never matches.
func CheckPassword(phc, password string) bool {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// NeedsRehash reports whether phc was made with other parameters than p
// (or cannot be read), so that a successful sign-in should store a new
// hash: old hashes keep verifying with their own parameters, and move to
// the current ones as their owners sign in.
func NeedsRehash(phc string, p PasswordParams) bool {
	got, _, _, err := parsePHC(phc)
	return err != nil || got != p
}

func parsePHC(phc string) (PasswordParams, []byte, []byte, error) {
	var p PasswordParams
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	var m, t, th uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 {
		return p, nil, nil, errors.New("bad argon2id parameters")
	}
	if t == 0 || t > maxTime || th == 0 || th > 255 || m < 8*th || m > maxMemoryKiB {
		return p, nil, nil, errors.New("argon2id parameters out of range")
	}
	salt, err := phcB64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, errors.New("bad salt")
	}
	h, err := phcB64.DecodeString(parts[5])
	if err != nil || len(h) < 16 || len(h) > 64 {
		return p, nil, nil, errors.New("bad hash")
	}
	return PasswordParams{Time: t, MemoryKiB: m, Threads: uint8(th)}, salt, h, nil
}

// GeneratePassword returns a random password of 144 bits (18 bytes,
// base64url: 24 characters).
func GeneratePassword() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

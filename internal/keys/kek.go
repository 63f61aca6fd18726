package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KEKSize is the size in bytes of a key-encryption key (AES-256).
const KEKSize = 32

// Sealer encrypts and decrypts private keys with AES-256-GCM under a KEK.
type Sealer struct {
	aead cipher.AEAD
	kek  []byte
}

// NewSealer returns a Sealer for a 32-byte KEK.
func NewSealer(kek []byte) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead, kek: append([]byte(nil), kek...)}, nil
}

// Seal encrypts plaintext bound to aad (the key id), returning nonce||ciphertext.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, aad)
}

// Open decrypts what Seal produced for the same aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("cannot decrypt private key: wrong key-encryption key?")
	}
	return pt, nil
}

// Derive returns a 32-byte subkey of the KEK for the given purpose (HKDF-SHA256),
// e.g. the key of the client-secret hash.
func (s *Sealer) Derive(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, s.kek, nil, "keybridge-sts "+purpose, 32)
	if err != nil {
		panic(err) // only fails for absurd lengths
	}
	return k
}

// ParseKEK decodes a KEK given as standard or URL-safe base64 (padded or
// not) or as 64 hex digits.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KEKSize {
			return b, nil
		}
	}
	if len(s) == 2*KEKSize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("key-encryption key must be %d bytes in base64 or hex", KEKSize)
}

// LoadOrCreateKEKFile reads the KEK stored in path, creating it with a fresh
// random key (mode 0600) if it does not exist. created reports whether it
// was created.
func LoadOrCreateKEKFile(path string) (kek []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKEK(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	k := make([]byte, KEKSize)
	rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // lost a race with another process
			return LoadOrCreateKEKFile(path)
		}
		return nil, false, err
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	return k, true, f.Close()
}

// Package discovery serves what lets others find and trust this server: the
// authorization server metadata (RFC 8414) at both well-known paths, with
// signed_metadata (RFC 8414 §2.1), and the JWK set at jwks_uri.
package discovery

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/keys"
	"github.com/keybridge/sts/oauth"
)

// Paths served by this package.
const (
	MetadataPath     = "/.well-known/oauth-authorization-server"
	OpenIDConfigPath = "/.well-known/openid-configuration"
	JWKSPath         = "/.well-known/jwks.json"
)

// JWKSMaxAge is how long caches may keep the JWK set. A next key is
// published for a whole rotation period before it signs, far longer than
// this, so a cached set always holds the key of any token it meets.
const JWKSMaxAge = 5 * time.Minute

// Handler serves metadata and the JWK set.
type Handler struct {
	meta oauth.Metadata
	keys *keys.Manager
	now  func() time.Time

	mu     sync.Mutex
	cached []byte
	signer *keys.Snapshot // the snapshot cached was signed with
}

// New returns the handler for metadata m (without signed_metadata, which
// it adds and re-signs whenever the signing key changes).
func New(m oauth.Metadata, k *keys.Manager, now func() time.Time) *Handler {
	return &Handler{meta: m, keys: k, now: now}
}

// Metadata returns the metadata document, signed by the current key.
func (h *Handler) Metadata() ([]byte, error) {
	snap := h.keys.Snapshot()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cached != nil && h.signer == snap {
		return h.cached, nil
	}
	m := h.meta
	claims := map[string]any{}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, err
	}
	// RFC 8414 §2.1: signed_metadata MUST contain iss.
	claims["iss"] = m.Issuer
	claims["iat"] = h.now().Unix()
	payload, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	signer, err := snap.Signer("JWT")
	if err != nil {
		return nil, err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return nil, err
	}
	if m.SignedMetadata, err = obj.CompactSerialize(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	h.cached, h.signer = append(b, '\n'), snap
	return h.cached, nil
}

// ServeMetadata answers GET on the metadata paths.
func (h *Handler) ServeMetadata(w http.ResponseWriter, r *http.Request) {
	b, err := h.Metadata()
	if err != nil {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(b)
}

// ServeJWKS answers GET on the JWK set path.
func (h *Handler) ServeJWKS(w http.ResponseWriter, r *http.Request) {
	snap := h.keys.Snapshot()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(JWKSMaxAge/time.Second)))
	w.Header().Set("ETag", `"`+snap.Fingerprint()+`"`)
	if r.Header.Get("If-None-Match") == `"`+snap.Fingerprint()+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(snap.JWKS)
}

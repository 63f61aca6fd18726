package stsclient

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"golang.org/x/oauth2"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/oauth"
)

// AssertionLifetime is the lifetime of the client assertions a [Client]
// signs for private_key_jwt: long enough for clock skew, short enough that
// a captured one is soon worthless (and it is single-use anyway).
const AssertionLifetime = 60 * time.Second

// authMethod is the method c uses: AuthMethod, else private_key_jwt when
// AssertionKey is set, else client_secret_basic.
func (c *Client) authMethod() string {
	switch {
	case c.AuthMethod != "":
		return c.AuthMethod
	case c.AssertionKey != nil:
		return oauth.AuthMethodPrivateKeyJWT
	}
	return oauth.AuthMethodClientSecretBasic
}

// authenticate adds c's client authentication to form and hreq.
func (c *Client) authenticate(form url.Values, hreq *http.Request) error {
	if c.ClientID == "" {
		return nil
	}
	switch m := c.authMethod(); m {
	case oauth.AuthMethodClientSecretBasic:
		hreq.Header.Set("Authorization", oauth.BasicAuth(c.ClientID, c.ClientSecret))
	case oauth.AuthMethodClientSecretPost:
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	case oauth.AuthMethodTLSClientAuth, oauth.AuthMethodSelfSignedTLSClientAuth:
		// RFC 8705 §2: the certificate of the TLS handshake (HTTPClient's)
		// authenticates; client_id names the client.
		form.Set("client_id", c.ClientID)
	case oauth.AuthMethodPrivateKeyJWT:
		a, err := c.assertion()
		if err != nil {
			return err
		}
		form.Set("client_id", c.ClientID)
		form.Set("client_assertion_type", oauth.ClientAssertionTypeJWTBearer)
		form.Set("client_assertion", a)
	default:
		return fmt.Errorf("stsclient: unsupported client authentication method %q", m)
	}
	return nil
}

// assertion signs a fresh client assertion (RFC 7523 §2.2, §3): iss and
// sub the client id, aud the token endpoint, a random jti, exp 60 s.
func (c *Client) assertion() (string, error) {
	if c.AssertionKey == nil {
		return "", errors.New("stsclient: private_key_jwt needs Client.AssertionKey")
	}
	alg := jose.SignatureAlgorithm(c.AssertionAlgorithm)
	if alg == "" {
		var err error
		if alg, err = dpop.AlgorithmFor(c.AssertionKey.Public()); err != nil {
			return "", fmt.Errorf("stsclient: assertion key: %w", err)
		}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if c.AssertionKeyID != "" {
		opts = opts.WithHeader("kid", c.AssertionKeyID)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(c.AssertionKey)}, opts)
	if err != nil {
		return "", fmt.Errorf("stsclient: assertion signer: %w", err)
	}
	aud := c.AssertionAudience
	if aud == "" {
		aud = c.TokenURL
	}
	now := c.now()
	payload, err := json.Marshal(map[string]any{
		"iss": c.ClientID, "sub": c.ClientID, "aud": aud, "jti": randomID(),
		"iat": now.Unix(), "exp": now.Add(AssertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("stsclient: sign assertion: %w", err)
	}
	return obj.CompactSerialize()
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// proof signs a DPoP proof of c's DPoPKey for method and target.
func (c *Client) proof(method, target, accessToken, nonce string) (string, error) {
	htu, err := htu(target)
	if err != nil {
		return "", err
	}
	p, err := dpop.NewProof(c.DPoPKey, jose.SignatureAlgorithm(c.DPoPAlgorithm), method, htu,
		dpop.ProofOptions{AccessToken: accessToken, Nonce: nonce, Now: c.now()})
	if err != nil {
		return "", fmt.Errorf("stsclient: DPoP proof: %w", err)
	}
	return p, nil
}

// htu is target without query and fragment (RFC 9449 §4.2).
func htu(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("stsclient: DPoP htu: %w", err)
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.String(), nil
}

// Transport returns an [http.RoundTripper] that authorizes each request
// with a token of src (for instance a [TokenSource]) on top of base
// (http.DefaultTransport when nil). A token of type DPoP (RFC 9449 §7.1)
// is sent as "Authorization: DPoP <token>" with a fresh proof of
// c.DPoPKey bound to the request's method and URL and to the token (ath);
// when the resource server answers 401 with use_dpop_nonce, the request
// is sent once more with the nonce it gave, provided its body can be
// replayed (http.NewRequest sets GetBody for the usual bodies). Any other
// token goes as "Authorization: Bearer <token>".
func (c *Client) Transport(src oauth2.TokenSource, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{c: c, src: src, base: base}
}

type transport struct {
	c    *Client
	src  oauth2.TokenSource
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.src.Token()
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if !strings.EqualFold(tok.Type(), dpop.AuthScheme) {
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return t.base.RoundTrip(r)
	}
	if t.c.DPoPKey == nil {
		closeBody(req)
		return nil, errors.New("stsclient: a DPoP-bound token needs Client.DPoPKey")
	}
	send := func(nonce string, body io.ReadCloser) (*http.Response, error) {
		p, err := t.c.proof(req.Method, req.URL.String(), tok.AccessToken, nonce)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, err
		}
		r := req.Clone(req.Context())
		r.Body = body
		r.Header.Set("Authorization", dpop.AuthScheme+" "+tok.AccessToken)
		r.Header.Set(dpop.Header, p)
		return t.base.RoundTrip(r)
	}
	resp, err := send("", req.Body)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	nonce := resp.Header.Get(dpop.NonceHeader)
	if nonce == "" || !challenges(resp.Header, dpop.CodeUseNonce) || (req.Body != nil && req.GetBody == nil) {
		return resp, nil
	}
	var body io.ReadCloser
	if req.Body != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return send(nonce, body)
}

// challenges reports whether a WWW-Authenticate header of h carries
// error="code".
func challenges(h http.Header, code string) bool {
	for _, v := range h.Values("WWW-Authenticate") {
		if strings.Contains(v, `error="`+code+`"`) {
			return true
		}
	}
	return false
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// isUseNonce reports whether a token endpoint answer asks for a DPoP
// nonce (RFC 9449 §8): 400 use_dpop_nonce with a DPoP-Nonce header.
func isUseNonce(status int, h http.Header, body []byte) (string, bool) {
	nonce := h.Get(dpop.NonceHeader)
	if status != http.StatusBadRequest || nonce == "" || !bytes.Contains(body, []byte(dpop.CodeUseNonce)) {
		return "", false
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error != dpop.CodeUseNonce {
		return "", false
	}
	return nonce, true
}

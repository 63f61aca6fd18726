package stsclient

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keybridge/sts/dpop"
	"github.com/keybridge/sts/oauth"
	"golang.org/x/oauth2"
)

// maxResponseSize bounds the token endpoint and metadata responses read.
const maxResponseSize = 1 << 20

// Client calls the token endpoint of an RFC 8693 authorization server.
//
// A Client is safe for concurrent use once configured; its fields must not
// change afterwards.
type Client struct {
	// TokenURL is the token endpoint, e.g. the token_endpoint of the
	// server's metadata (see [Discover]).
	TokenURL string

	// ClientID and ClientSecret are the client's credentials. With an empty
	// ClientID the requests are not authenticated (RFC 8693 §2.1 allows
	// servers to accept unauthenticated clients).
	ClientID     string
	ClientSecret string

	// AuthMethod is how the client authenticates:
	// [oauth.AuthMethodClientSecretBasic] (the default when empty and no
	// AssertionKey is set), in the Authorization header and
	// form-url-encoded before base64 as RFC 6749 §2.3.1 requires;
	// [oauth.AuthMethodClientSecretPost], in the body;
	// [oauth.AuthMethodTLSClientAuth] or
	// [oauth.AuthMethodSelfSignedTLSClientAuth] (RFC 8705 §2), with the
	// client certificate of HTTPClient and only client_id in the body; or
	// [oauth.AuthMethodPrivateKeyJWT] (RFC 7523 §2.2, the default when
	// AssertionKey is set), with a client assertion signed by AssertionKey.
	AuthMethod string

	// AssertionKey signs the client assertions of private_key_jwt: a
	// fresh one for every request, with iss and sub ClientID, aud
	// AssertionAudience (TokenURL when empty), a random jti and a
	// lifetime of [AssertionLifetime]. Any crypto.Signer works (an HSM or
	// KMS key included); its public key is registered with the server
	// (jwks or jwks_uri). AssertionKeyID is the kid of its JWK, and
	// AssertionAlgorithm its JWS algorithm (by default ES256/ES384/ES512
	// for ECDSA keys by curve, EdDSA for Ed25519, PS256 for RSA).
	AssertionKey       crypto.Signer
	AssertionKeyID     string
	AssertionAlgorithm string
	AssertionAudience  string

	// DPoPKey, when set, makes every token request carry a DPoP proof of
	// this key (RFC 9449 §5), so that the server binds the issued tokens
	// to it (token_type DPoP, cnf.jkt); a request the server answers with
	// use_dpop_nonce is sent once more with its nonce. [Client.Transport]
	// then presents such tokens with proofs. DPoPAlgorithm is the proof
	// algorithm (by default as for AssertionAlgorithm). Keep the key for
	// as long as the tokens bound to it are used.
	DPoPKey       crypto.Signer
	DPoPAlgorithm string

	// HTTPClient sends the requests; http.DefaultClient when nil. For
	// tls_client_auth and self_signed_tls_client_auth its transport
	// presents the client certificate (tls.Config.Certificates).
	HTTPClient *http.Client

	// ExpiryDelta is how long before its expiry a token cached by a
	// [TokenSource] is replaced. Zero means 30 seconds. It never exceeds
	// half of a token's lifetime, so short-lived tokens are still reused.
	ExpiryDelta time.Duration

	// Now is the clock used to compute expiry times; time.Now when nil.
	Now func() time.Time
}

// ExchangeRequest holds the parameters of a token-exchange request
// (RFC 8693 §2.1, https://www.rfc-editor.org/rfc/rfc8693#section-2.1).
// Empty fields are not sent.
type ExchangeRequest struct {
	// SubjectToken is the token that represents the party on whose behalf
	// the request is made. Required.
	SubjectToken string
	// SubjectTokenType is the token-type URN of SubjectToken, e.g.
	// [oauth.TokenTypeAccessToken]. Required, except in
	// [Client.TokenSource], which defaults it to the access-token type.
	SubjectTokenType string
	// ActorToken represents the acting party (delegation, RFC 8693 §1.1).
	ActorToken string
	// ActorTokenType is the token-type URN of ActorToken; required when
	// ActorToken is set, and must be empty otherwise.
	ActorTokenType string
	// Resource lists the absolute URIs of the target services (RFC 8707);
	// each is sent as its own "resource" parameter.
	Resource []string
	// Audience lists the logical names of the target services; each is
	// sent as its own "audience" parameter.
	Audience []string
	// Scope lists the requested scope tokens, sent space-separated
	// (RFC 6749 §3.3).
	Scope []string
	// RequestedTokenType is the token-type URN wanted, e.g.
	// [oauth.TokenTypeJWT]; the server chooses when empty.
	RequestedTokenType string
	// Extra holds further form parameters for servers that define their
	// own; it must not repeat the parameters above.
	Extra url.Values
}

// ExchangeResponse is a successful token-exchange response
// (RFC 8693 §2.2.1, https://www.rfc-editor.org/rfc/rfc8693#section-2.2.1).
type ExchangeResponse struct {
	oauth.TokenResponse
	// Expiry is when the issued token expires, computed from expires_in
	// when the response arrived; zero when the server sent no expires_in.
	Expiry time.Time
	// Raw holds every member of the response, including extensions.
	Raw map[string]any
}

// Token converts the response to an [oauth2.Token]. The RFC 8693 members
// issued_token_type and scope stay available through [oauth2.Token.Extra].
func (r *ExchangeResponse) Token() *oauth2.Token {
	t := &oauth2.Token{
		AccessToken:  r.AccessToken,
		TokenType:    r.TokenType,
		RefreshToken: r.RefreshToken,
		Expiry:       r.Expiry,
		ExpiresIn:    r.ExpiresIn,
	}
	if r.Raw != nil {
		t = t.WithExtra(r.Raw)
	}
	return t
}

// Error is a refusal from the token endpoint: an OAuth error response
// (RFC 6749 §5.2, RFC 8693 §2.2.2) or any other answer that is not a
// success, such as a proxy's 502 page. It mirrors [oauth2.RetrieveError].
//
// errors.Is(err, &oauth.Error{Code: c}) reports whether err is an Error with
// the code c.
type Error struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the OAuth "error" member; empty when the body was not an OAuth
	// error response.
	Code oauth.ErrorCode
	// Description is the "error_description" member, if any.
	Description string
	// URI is the "error_uri" member, if any.
	URI string
	// Header is the response header (e.g. WWW-Authenticate of a 401).
	Header http.Header
	// Body is the response body, at most 1 MiB.
	Body []byte
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Code == "" {
		body := string(e.Body)
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		return fmt.Sprintf("stsclient: token endpoint answered %d: %q", e.StatusCode, body)
	}
	s := fmt.Sprintf("stsclient: %s (HTTP %d)", e.Code, e.StatusCode)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Is reports whether target is an [*oauth.Error] or an *Error with the same
// code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *oauth.Error:
		return e.Code != "" && t.Code == e.Code
	case *Error:
		return e.Code != "" && t.Code == e.Code
	}
	return false
}

// Exchange sends a token-exchange request (RFC 8693 §2.1) and returns the
// server's answer. A refusal is returned as an [*Error]; a request that
// lacks a required parameter is refused before anything is sent.
func (c *Client) Exchange(ctx context.Context, req ExchangeRequest) (*ExchangeResponse, error) {
	if err := req.check(); err != nil {
		return nil, err
	}
	form := url.Values{}
	for k, v := range req.Extra {
		form[k] = append([]string(nil), v...)
	}
	form.Set("grant_type", oauth.GrantTypeTokenExchange)
	form.Set("subject_token", req.SubjectToken)
	form.Set("subject_token_type", req.SubjectTokenType)
	if req.ActorToken != "" {
		form.Set("actor_token", req.ActorToken)
		form.Set("actor_token_type", req.ActorTokenType)
	}
	if len(req.Resource) > 0 {
		form["resource"] = append([]string(nil), req.Resource...)
	}
	if len(req.Audience) > 0 {
		form["audience"] = append([]string(nil), req.Audience...)
	}
	if len(req.Scope) > 0 {
		form.Set("scope", strings.Join(req.Scope, " "))
	}
	if req.RequestedTokenType != "" {
		form.Set("requested_token_type", req.RequestedTokenType)
	}
	return c.post(ctx, form)
}

func (r *ExchangeRequest) check() error {
	switch {
	case r.SubjectToken == "":
		return errors.New("stsclient: subject token is required (RFC 8693 §2.1)")
	case r.SubjectTokenType == "":
		return errors.New("stsclient: subject token type is required (RFC 8693 §2.1)")
	case r.ActorToken != "" && r.ActorTokenType == "":
		return errors.New("stsclient: actor token type is required with an actor token (RFC 8693 §2.1)")
	case r.ActorToken == "" && r.ActorTokenType != "":
		return errors.New("stsclient: actor token type without an actor token (RFC 8693 §2.1)")
	}
	for _, s := range r.Scope {
		if !oauth.ValidScopeToken(s) {
			return fmt.Errorf("stsclient: %q is not a scope token (RFC 6749 §3.3)", s)
		}
	}
	return nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// post sends form to the token endpoint, authenticated, and decodes the
// answer.
func (c *Client) post(ctx context.Context, form url.Values) (*ExchangeResponse, error) {
	if c.TokenURL == "" {
		return nil, errors.New("stsclient: Client.TokenURL is empty")
	}
	resp, body, start, err := c.send(ctx, form, "")
	if err != nil {
		return nil, err
	}
	if nonce, ok := isUseNonce(resp.StatusCode, resp.Header, body); ok && c.DPoPKey != nil {
		// RFC 9449 §8: the server wants its nonce in the proof; once.
		if resp, body, start, err = c.send(ctx, form, nonce); err != nil {
			return nil, err
		}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, newError(resp, body)
	}
	return decodeResponse(body, start)
}

// send posts form to the token endpoint with fresh client authentication
// (a new assertion each time) and, with DPoPKey, a fresh proof.
func (c *Client) send(ctx context.Context, base url.Values, nonce string) (*http.Response, []byte, time.Time, error) {
	form := url.Values{}
	for k, v := range base {
		form[k] = v
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, nil)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("stsclient: %w", err)
	}
	if err := c.authenticate(form, hreq); err != nil {
		return nil, nil, time.Time{}, err
	}
	if c.DPoPKey != nil {
		p, err := c.proof(http.MethodPost, c.TokenURL, "", nonce)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		hreq.Header.Set(dpop.Header, p)
	}
	enc := form.Encode()
	hreq.Body = io.NopCloser(strings.NewReader(enc))
	hreq.ContentLength = int64(len(enc))
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("Accept", "application/json")
	start := c.now()
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		return nil, nil, start, fmt.Errorf("stsclient: token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, nil, start, fmt.Errorf("stsclient: read token response: %w", err)
	}
	return resp, body, start, nil
}

// newError builds the *Error of a non-200 answer (RFC 6749 §5.2).
func newError(resp *http.Response, body []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	var wire struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if json.Unmarshal(body, &wire) == nil {
		e.Code, e.Description, e.URI = oauth.ErrorCode(wire.Error), wire.Description, wire.URI
	}
	return e
}

// decodeResponse reads a success body. It is lenient where servers differ
// in harmless ways (expires_in as a string) and strict where a client could
// be misled (no access_token).
func decodeResponse(body []byte, received time.Time) (*ExchangeResponse, error) {
	var wire struct {
		AccessToken     string          `json:"access_token"`
		IssuedTokenType string          `json:"issued_token_type"`
		TokenType       string          `json:"token_type"`
		ExpiresIn       json.RawMessage `json:"expires_in"`
		Scope           string          `json:"scope"`
		RefreshToken    string          `json:"refresh_token"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("stsclient: token response is not a JSON object: %w", err)
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, fmt.Errorf("stsclient: token response: %w", err)
	}
	if wire.AccessToken == "" {
		return nil, errors.New("stsclient: token response has no access_token (RFC 8693 §2.2.1)")
	}
	r := &ExchangeResponse{
		TokenResponse: oauth.TokenResponse{
			AccessToken:     wire.AccessToken,
			IssuedTokenType: wire.IssuedTokenType,
			TokenType:       wire.TokenType,
			Scope:           wire.Scope,
			RefreshToken:    wire.RefreshToken,
		},
		Raw: raw,
	}
	if len(wire.ExpiresIn) > 0 && string(wire.ExpiresIn) != "null" {
		n, err := parseSeconds(wire.ExpiresIn)
		if err != nil {
			return nil, fmt.Errorf("stsclient: token response: expires_in: %w", err)
		}
		if n > 0 {
			r.ExpiresIn = n
			r.Expiry = received.Add(time.Duration(n) * time.Second)
		}
	}
	return r, nil
}

// parseSeconds reads a number of seconds sent as a JSON number or string.
func parseSeconds(b json.RawMessage) (int64, error) {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f > math.MaxInt32*64 {
		return 0, fmt.Errorf("invalid number of seconds %s", b)
	}
	return int64(f), nil
}

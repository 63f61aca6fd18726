package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// fetchError is a failed outbound call: safe is a short description we
// wrote ourselves (no upstream content), fit for a client-facing Reason;
// cause carries the detail for the log.
type fetchError struct {
	safe  string
	cause error
}

func (e *fetchError) Error() string {
	if e.cause != nil {
		return e.safe + ": " + e.cause.Error()
	}
	return e.safe
}

func (e *fetchError) Unwrap() error { return e.cause }

// upstreamError makes the *Error of a failed fetch of what ("keys",
// "discovery document", ...) of issuer.
func upstreamError(issuer, what string, err error) *Error {
	safe, cause := "the upstream answered badly", err
	var fe *fetchError
	if errors.As(err, &fe) {
		// The safe text is in the Reason; the Cause keeps the detail.
		safe, cause = fe.safe, fe.cause
	}
	return &Error{
		Reason:   fmt.Sprintf("the %s of issuer %s could not be fetched: %s", what, issuer, safe),
		Upstream: true,
		Cause:    cause,
	}
}

// buildClient returns the HTTP client of the outbound calls. A client
// given in Options is copied so that the redirect rule still applies.
func (o Options) buildClient() *http.Client {
	var c http.Client
	if o.HTTPClient != nil {
		c = *o.HTTPClient
	} else {
		d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
		c.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   o.ConnectTimeout,
			ResponseHeaderTimeout: o.FetchTimeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	if o.WrapTransport != nil {
		c.Transport = o.WrapTransport(c.Transport)
	}
	c.Timeout = o.FetchTimeout
	c.CheckRedirect = checkRedirect
	return &c
}

// checkRedirect follows a redirect only to the same host (scheme and
// port included, so no downgrade from https to http): a trusted issuer's
// documents are its own, and a redirect elsewhere is how an SSRF or a
// hijacked path would send us to keys the operator never trusted.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return &fetchError{safe: "too many redirects"}
	}
	first := via[0].URL
	if !strings.EqualFold(req.URL.Host, first.Host) {
		return &fetchError{safe: "redirect to another host refused", cause: fmt.Errorf("redirect to %s", req.URL.Redacted())}
	}
	if req.URL.Scheme != first.Scheme {
		return &fetchError{safe: "redirect to another scheme refused", cause: fmt.Errorf("redirect to %s", req.URL.Redacted())}
	}
	return nil
}

// isLoopback reports whether host (without port) is a loopback name or
// address, where plain http cannot be intercepted off the machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL applies the scheme rule: https, or http to a loopback host or
// when the operator allowed it for this issuer.
func checkURL(ti *store.TrustedIssuer, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, &fetchError{safe: "invalid URL", cause: fmt.Errorf("URL %q", raw)}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !ti.AllowHTTP && !isLoopback(u.Hostname()) {
			return nil, &fetchError{safe: "https is required", cause: fmt.Errorf("URL %s", u.Redacted())}
		}
	default:
		return nil, &fetchError{safe: "https is required", cause: fmt.Errorf("URL %s", u.Redacted())}
	}
	// A remote issuer's discovery document must not point this server at
	// its own machine (a blind request to a local admin port): loopback
	// is fetched only for an issuer on loopback, or at a URL the
	// operator configured.
	if isLoopback(u.Hostname()) && raw != ti.JWKSURI && raw != ti.IntrospectionEndpoint {
		if iu, err := url.Parse(ti.Issuer); err != nil || !isLoopback(iu.Hostname()) {
			return nil, &fetchError{safe: "a loopback address named by a remote issuer's metadata is refused", cause: fmt.Errorf("URL %s", u.Redacted())}
		}
	}
	return u, nil
}

// fetched is a JSON answer with how long it may be cached.
type fetched struct {
	body   []byte
	maxAge time.Duration // -1 when the answer had no max-age
}

// get fetches raw (GET, or POST of form when form is not nil) and returns
// its body, bounded in time by FetchTimeout and in size by
// MaxResponseBytes. The redirect rule of checkRedirect applies.
func (f *Fetcher) fetch(ctx context.Context, ti *store.TrustedIssuer, raw string, form url.Values, user, pass string) (*fetched, error) {
	u, err := checkURL(ti, raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.o.FetchTimeout)
	defer cancel()
	var req *http.Request
	if form == nil {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	}
	if err != nil {
		return nil, &fetchError{safe: "invalid URL", cause: err}
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			// RFC 6749 §2.3.1: the client id and secret are
			// form-encoded before Basic authentication (RFC 7662 §2.1
			// uses the same client authentication).
			req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
		}
	}
	req.Header.Set("Accept", "application/json")
	f.fetches.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		var fe *fetchError
		switch {
		case errors.As(err, &fe):
			return nil, fe
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			return nil, &fetchError{safe: fmt.Sprintf("no answer within %s", f.o.FetchTimeout), cause: err}
		default:
			return nil, &fetchError{safe: "the upstream could not be reached", cause: err}
		}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, &fetchError{safe: fmt.Sprintf("status %d", resp.StatusCode), cause: fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		// JSON-ish is tolerated (application/json, application/jwk-set+json,
		// text/plain from a misconfigured server); HTML is what a login
		// page or captive portal sends, never a key set.
		if err != nil || !(strings.Contains(mt, "json") || mt == "text/plain" || mt == "application/octet-stream") {
			return nil, &fetchError{safe: "the answer is not JSON", cause: fmt.Errorf("content type %q", ct)}
		}
	}
	// Read one byte past the limit to tell an oversized answer (an
	// error: never parse a truncated document) from one that fits.
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.o.MaxResponseBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return nil, &fetchError{safe: fmt.Sprintf("no answer within %s", f.o.FetchTimeout), cause: err}
		}
		return nil, &fetchError{safe: "the answer could not be read", cause: err}
	}
	if int64(len(body)) > f.o.MaxResponseBytes {
		return nil, &fetchError{safe: fmt.Sprintf("the answer is larger than %d bytes", f.o.MaxResponseBytes)}
	}
	if !json.Valid(body) {
		return nil, &fetchError{safe: "the answer is not valid JSON"}
	}
	return &fetched{body: body, maxAge: maxAge(resp.Header)}, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// maxAge reads Cache-Control (RFC 9111 §5.2.2): max-age=N, or zero for
// no-store / no-cache (clamped later to MinCache, so that an upstream
// cannot make us fetch on every request); -1 when absent.
func maxAge(h http.Header) time.Duration {
	cc := h.Values("Cache-Control")
	age := time.Duration(-1)
	for _, v := range cc {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(strings.ToLower(d))
			switch {
			case d == "no-store" || d == "no-cache":
				return 0
			case strings.HasPrefix(d, "max-age="):
				n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64)
				if err == nil && n >= 0 {
					if n > int64(365*24*time.Hour/time.Second) {
						n = int64(365 * 24 * time.Hour / time.Second)
					}
					age = time.Duration(n) * time.Second
				}
			}
		}
	}
	return age
}

// cacheFor is how long an answer with max-age a is used.
func (f *Fetcher) cacheFor(a time.Duration) time.Duration {
	if a < 0 {
		a = DefaultCache
	}
	return min(max(a, f.o.MinCache), f.o.MaxCache)
}

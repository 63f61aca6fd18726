package stsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/keybridge/sts/oauth"
)

// Well-known paths of the metadata documents.
const (
	// MetadataPath is the RFC 8414 §3 well-known path.
	MetadataPath = "/.well-known/oauth-authorization-server"
	// OpenIDConfigurationPath is the OpenID Connect Discovery 1.0 §4 path,
	// tried when a server does not serve MetadataPath.
	OpenIDConfigurationPath = "/.well-known/openid-configuration"
)

// Discover fetches the authorization server metadata of issuer
// (RFC 8414, https://www.rfc-editor.org/rfc/rfc8414) and returns it once its
// "issuer" member is identical to issuer, as RFC 8414 §3.3 requires (a
// document naming another issuer could redirect the client to an attacker's
// endpoints).
//
// It reads /.well-known/oauth-authorization-server, inserted between the
// host and the path of the issuer (RFC 8414 §3.1), and falls back to the
// OpenID Connect location (issuer + /.well-known/openid-configuration)
// when the server answers 404 there. hc sends the requests;
// http.DefaultClient when nil.
func Discover(ctx context.Context, hc *http.Client, issuer string) (*oauth.Metadata, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("stsclient: issuer %q must be an http(s) URL without query or fragment (RFC 8414 §2)", issuer)
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	wellKnown := u.Scheme + "://" + u.Host + MetadataPath + path
	md, status, err := getMetadata(ctx, hc, wellKnown)
	if status == http.StatusNotFound {
		md, _, err = getMetadata(ctx, hc, u.Scheme+"://"+u.Host+path+OpenIDConfigurationPath)
	}
	if err != nil {
		return nil, err
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("stsclient: metadata names issuer %q, not %q (RFC 8414 §3.3)", md.Issuer, issuer)
	}
	return md, nil
}

func getMetadata(ctx context.Context, hc *http.Client, u string) (*oauth.Metadata, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("stsclient: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("stsclient: metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("stsclient: metadata: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("stsclient: metadata %s: HTTP %d", u, resp.StatusCode)
	}
	var md oauth.Metadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("stsclient: metadata %s: %w", u, err)
	}
	if md.Issuer == "" {
		return nil, resp.StatusCode, errors.New("stsclient: metadata without issuer (RFC 8414 §2)")
	}
	return &md, resp.StatusCode, nil
}

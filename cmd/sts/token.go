package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
	"github.com/spf13/cobra"
)

func newToken() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Obtain, exchange and inspect tokens (a debugging client)",
	}
	cmd.AddCommand(newTokenExchange(), newTokenClientCredentials(), newTokenIntrospect(), newTokenRevoke(), newTokenInspect())
	return cmd
}

// tokenClient holds the flags shared by the commands that call the token,
// introspection and revocation endpoints as a client.
type tokenClient struct {
	server       serverFlag
	endpoint     string // --token-endpoint, the deprecated form of --server
	clientID     string
	clientSecret string
	authMethod   string
	output       string
}

// tokenRequest adds the flags of the token endpoint's requests.
type tokenRequest struct {
	tokenClient
	scopes    []string
	resources []string
	audiences []string
}

func (tc *tokenClient) register(cmd *cobra.Command) {
	f := cmd.Flags()
	tc.server.register(cmd, false)
	f.StringVar(&tc.endpoint, "token-endpoint", "", "token endpoint URL")
	f.MarkDeprecated("token-endpoint", "use --server with the server's base URL")
	f.StringVar(&tc.clientID, "client-id", "", "client id (default $STS_CLIENT_ID)")
	f.StringVar(&tc.clientSecret, "client-secret", "", "client secret (default $STS_CLIENT_SECRET, which keeps it out of the process list)")
	f.StringVar(&tc.authMethod, "auth-method", "basic", "client authentication: basic (client_secret_basic) or post (client_secret_post)")
	f.StringVarP(&tc.output, "output", "o", "text", "output: text or json")
}

func (tr *tokenRequest) register(cmd *cobra.Command) {
	tr.tokenClient.register(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&tr.scopes, "scope", nil, "requested scope (repeatable, or several separated by spaces)")
	f.StringArrayVar(&tr.resources, "resource", nil, "resource URI the token is for (repeatable; RFC 8707)")
	f.StringArrayVar(&tr.audiences, "audience", nil, "logical name of the target service (repeatable; RFC 8693 §2.1)")
}

// asJSON checks --output; "token", the old name of text, is still taken.
func (tc *tokenClient) asJSON() (bool, error) {
	switch tc.output {
	case "json":
		return true, nil
	case "text", "token":
		return false, nil
	}
	return false, fmt.Errorf("--output must be text or json, not %q", tc.output)
}

// url returns the URL of the endpoint at path on the server (or the
// --token-endpoint given, for the token endpoint).
func (tc *tokenClient) url(cmd *cobra.Command, path string) (string, error) {
	if path == server.TokenPath {
		if e := firstNonEmpty(tc.endpoint, os.Getenv("STS_TOKEN_ENDPOINT")); e != "" {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return "", fmt.Errorf("--token-endpoint %q is not an http(s) URL", e)
			}
			return e, nil
		}
	}
	base, err := tc.server.one(cmd)
	if err != nil {
		return "", err
	}
	return base + path, nil
}

// authenticate adds the client's credentials to header or form (RFC 6749
// §2.3.1).
func (tc *tokenClient) authenticate(header http.Header, form url.Values) error {
	id := firstNonEmpty(tc.clientID, os.Getenv("STS_CLIENT_ID"))
	secret := firstNonEmpty(tc.clientSecret, os.Getenv("STS_CLIENT_SECRET"))
	if id == "" || secret == "" {
		return errors.New("--client-id and --client-secret (or STS_CLIENT_ID and STS_CLIENT_SECRET) are required")
	}
	switch tc.authMethod {
	case "basic", oauth.AuthMethodClientSecretBasic:
		header.Set("Authorization", oauth.BasicAuth(id, secret))
	case "post", oauth.AuthMethodClientSecretPost:
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	default:
		return fmt.Errorf("--auth-method must be basic or post, not %q", tc.authMethod)
	}
	return nil
}

// request posts form to the token endpoint, authenticated as the client,
// and writes the response: with -o json the whole response; as text the
// access token alone on standard output (for scripts) and the rest of the
// response on standard error (for people). An OAuth error response is
// returned as one line `<error>: <error_description>`.
func (tr *tokenRequest) request(cmd *cobra.Command, form url.Values) error {
	asJSON, err := tr.asJSON()
	if err != nil {
		return err
	}
	endpoint, err := tr.url(cmd, server.TokenPath)
	if err != nil {
		return err
	}
	if scope := strings.Join(strings.Fields(strings.Join(tr.scopes, " ")), " "); scope != "" {
		form.Set("scope", scope)
	}
	for _, r := range tr.resources {
		form.Add("resource", r)
	}
	for _, a := range tr.audiences {
		form.Add("audience", a)
	}
	header := make(http.Header)
	if err := tr.authenticate(header, form); err != nil {
		return err
	}
	resp, raw, err := postToken(cmd.Context(), endpoint, header, form)
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintln(cmd.OutOrStdout(), resp.AccessToken)
		summary := fmt.Sprintf("token_type=%s expires_in=%d", resp.TokenType, resp.ExpiresIn)
		if resp.IssuedTokenType != "" {
			summary = "issued_token_type=" + resp.IssuedTokenType + " " + summary
		}
		if resp.Scope != "" {
			summary += fmt.Sprintf(" scope=%q", resp.Scope)
		}
		if resp.RefreshToken != "" {
			// A credential: not on a stream that ends up in logs.
			summary += " refresh_token=(issued; -o json shows it)"
		}
		fmt.Fprintln(cmd.ErrOrStderr(), summary)
		return nil
	}
	return writeIndented(cmd.OutOrStdout(), raw)
}

func writeIndented(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// postForm sends a form to an endpoint and returns the status and body;
// an OAuth error response (RFC 6749 §5.2) is returned as one error line.
func postForm(ctx context.Context, endpoint string, header http.Header, form url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", endpoint, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", endpoint, err)
	}
	mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode != http.StatusOK {
		var oe oauth.Error
		if mt == "application/json" && json.Unmarshal(body, &oe) == nil && oe.Code != "" {
			return nil, fmt.Errorf("%s: %s", oe.Code, oneLineText(oe.Description))
		}
		return nil, fmt.Errorf("%s answered %s", endpointName(endpoint), res.Status)
	}
	return body, nil
}

// endpointName names an endpoint in messages.
func endpointName(endpoint string) string {
	switch {
	case strings.HasSuffix(endpoint, server.IntrospectPath):
		return "introspection endpoint"
	case strings.HasSuffix(endpoint, server.RevokePath):
		return "revocation endpoint"
	}
	return "token endpoint"
}

// postToken sends a token request and decodes the answer (RFC 6749 §5.1,
// §5.2).
func postToken(ctx context.Context, endpoint string, header http.Header, form url.Values) (*oauth.TokenResponse, []byte, error) {
	body, err := postForm(ctx, endpoint, header, form)
	if err != nil {
		return nil, nil, err
	}
	var tr oauth.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, nil, errors.New("token endpoint answered 200 without a token response")
	}
	return &tr, body, nil
}

func oneLineText(s string) string {
	if s == "" {
		return "(no description)"
	}
	return strings.Join(strings.Fields(s), " ")
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// tokenTypes maps the short names an operator may type to RFC 8693 §3
// token type URNs.
var tokenTypes = map[string]string{
	"access_token":  oauth.TokenTypeAccessToken,
	"access-token":  oauth.TokenTypeAccessToken,
	"refresh_token": oauth.TokenTypeRefreshToken,
	"refresh-token": oauth.TokenTypeRefreshToken,
	"id_token":      oauth.TokenTypeIDToken,
	"id-token":      oauth.TokenTypeIDToken,
	"jwt":           oauth.TokenTypeJWT,
	"saml1":         oauth.TokenTypeSAML1,
	"saml2":         oauth.TokenTypeSAML2,
}

// tokenType resolves a short name; a URN (or anything else) is sent as
// given, for the server to judge.
func tokenType(s string) string {
	if u, ok := tokenTypes[strings.TrimSpace(s)]; ok {
		return u
	}
	return strings.TrimSpace(s)
}

func newTokenExchange() *cobra.Command {
	var (
		tc                              tokenRequest
		subject, subjectType            string
		actor, actorType, requestedType string
	)
	cmd := &cobra.Command{
		Use:   "exchange --subject-token TOKEN|- --client-id ID [flags]",
		Short: "Exchange a token at a token endpoint (RFC 8693)",
		Long: `Send an RFC 8693 token exchange request and print the response. Flags are
named after the request parameters. Token types take the full URN or the
short names access_token, refresh_token, jwt and id_token. A subject or
actor token of "-" is read from stdin. An OAuth error response ends the
command with a non-zero status and the line "sts: <error>: <description>".`,
		Example: `  export STS_CLIENT_SECRET=...   # the gateway's secret
  sts token exchange --client-id gateway --subject-token "$TOKEN" --audience https://backend.example.com/api

  # A first token from one client, exchanged by another:
  STS_CLIENT_SECRET="$CALLER_SECRET" sts token client-credentials --client-id caller |
    STS_CLIENT_SECRET="$GATEWAY_SECRET" sts token exchange --client-id gateway --subject-token -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if subject == "" {
				return errors.New("--subject-token is required (\"-\" reads it from stdin)")
			}
			if subject == "-" && actor == "-" {
				return errors.New("only one of --subject-token and --actor-token can be read from stdin")
			}
			sub, err := readArg(cmd.InOrStdin(), subject, "subject token")
			if err != nil {
				return err
			}
			form := url.Values{
				"grant_type":         {oauth.GrantTypeTokenExchange},
				"subject_token":      {sub},
				"subject_token_type": {tokenType(subjectType)},
			}
			if actor != "" {
				act, err := readArg(cmd.InOrStdin(), actor, "actor token")
				if err != nil {
					return err
				}
				form.Set("actor_token", act)
				form.Set("actor_token_type", tokenType(actorType))
			} else if cmd.Flags().Changed("actor-token-type") {
				return errors.New("--actor-token-type needs --actor-token")
			}
			if requestedType != "" {
				form.Set("requested_token_type", tokenType(requestedType))
			}
			return tc.request(cmd, form)
		},
	}
	f := cmd.Flags()
	f.StringVar(&subject, "subject-token", "", `the token to exchange ("-": read from stdin)`)
	f.StringVar(&subjectType, "subject-token-type", "access_token", "type of the subject token: access_token, jwt, refresh_token, id_token or a URN")
	f.StringVar(&actor, "actor-token", "", `token of the party acting for the subject ("-": read from stdin)`)
	f.StringVar(&actorType, "actor-token-type", "access_token", "type of the actor token")
	f.StringVar(&requestedType, "requested-token-type", "", "type of token wanted: access_token, jwt, refresh_token or a URN (default: the server's choice)")
	tc.register(cmd)
	return cmd
}

func newTokenClientCredentials() *cobra.Command {
	var tc tokenRequest
	cmd := &cobra.Command{
		Use:   "client-credentials --client-id ID [flags]",
		Short: "Obtain a token for the client itself (RFC 6749 §4.4)",
		Long: `Send a client_credentials request and print the response: a first token
for a client, e.g. to use as a subject token with "sts token exchange".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return tc.request(cmd, url.Values{"grant_type": {oauth.GrantTypeClientCredentials}})
		},
	}
	tc.register(cmd)
	return cmd
}

// inspection is what `token inspect` reports.
type inspection struct {
	Format string `json:"format"` // jwt or opaque
	// Valid is the overall verdict: a good signature by a published key
	// and not expired (JWT), or active (opaque).
	Valid  bool           `json:"valid"`
	Reason string         `json:"reason,omitempty"`
	Header map[string]any `json:"header,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
	// Signature is set for a JWT.
	Signature *sigCheck `json:"signature,omitempty"`
	// Expired is set for a JWT with exp.
	Expired *bool `json:"expired,omitempty"`
	// Revoked is set for a JWT with a jti.
	Revoked   *bool       `json:"revoked,omitempty"`
	ExpiresAt string      `json:"expires_at,omitempty"`
	Record    *recordView `json:"record,omitempty"`
	notes     []string
}

type sigCheck struct {
	Valid    bool   `json:"valid"`
	KID      string `json:"kid,omitempty"`
	Alg      string `json:"alg,omitempty"`
	KeyState string `json:"key_state,omitempty"`
	Error    string `json:"error,omitempty"`
}

// recordView is the stored record of an opaque token.
type recordView struct {
	Kind       string          `json:"kind"`
	JTI        string          `json:"jti"`
	ClientID   string          `json:"client_id"`
	Subject    string          `json:"subject"`
	Scope      string          `json:"scope,omitempty"`
	Audience   []string        `json:"audience"`
	Actor      json.RawMessage `json:"act,omitempty"`
	FamilyID   string          `json:"family_id,omitempty"`
	IssuedAt   string          `json:"issued_at"`
	ExpiresAt  string          `json:"expires_at"`
	RevokedAt  string          `json:"revoked_at,omitempty"`
	ConsumedAt string          `json:"consumed_at,omitempty"`
}

func newTokenInspect() *cobra.Command {
	var out output
	cmd := &cobra.Command{
		Use:   "inspect TOKEN|-",
		Short: "Decode a token and check it against this data directory",
		Long: `Decode a token and check it against this data directory or database. A JWT's
header and claims are printed, its signature verified with the published
key its kid names (with that key's algorithm only) and its expiry checked.
An opaque token (sts_at_..., sts_rt_...) is looked up by its hash and its
stored record printed. The command exits non-zero when the token is not
valid, after printing what it found. "-" reads the token from stdin.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := out.json()
			if err != nil {
				return err
			}
			raw, err := readArg(cmd.InOrStdin(), args[0], "token")
			if err != nil {
				return err
			}
			opaque := strings.HasPrefix(raw, token.PrefixAccess) || strings.HasPrefix(raw, token.PrefixRefresh)
			var header, claims map[string]any
			if !opaque {
				// Decode before opening anything: a token that is not a
				// JWT is a one-line error.
				if header, claims, err = token.ParseUnverified(raw); err != nil {
					return errors.New("not a JWT (three base64url JSON parts) nor an opaque sts_at_/sts_rt_ token")
				}
			}
			env, err := openData(cmd)
			if err != nil {
				return err
			}
			defer env.Close()
			now := time.Now()
			var in *inspection
			if opaque {
				in, err = inspectOpaque(cmd.Context(), env.Store, raw, now)
			} else {
				in, err = inspectJWT(cmd.Context(), env.Store, raw, header, claims, now)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(w, in); err != nil {
					return err
				}
			} else if err := in.writeText(w); err != nil {
				return err
			}
			if !in.Valid {
				return fmt.Errorf("token is not valid: %s", in.Reason)
			}
			return nil
		},
	}
	out.register(cmd)
	return cmd
}

// inspectJWT verifies raw with the key its kid names among the keys this
// store publishes. Reading the store (rather than building a key manager)
// needs no private key and creates nothing.
func inspectJWT(ctx context.Context, ks interface {
	store.Keys
	store.Revocations
}, raw string, header, claims map[string]any, now time.Time) (*inspection, error) {
	in := &inspection{Format: token.FormatJWT, Header: header, Claims: claims, Signature: &sigCheck{}}
	kid, _ := header["kid"].(string)
	alg, _ := header["alg"].(string)
	in.Signature.KID, in.Signature.Alg = kid, alg
	recs, err := ks.ListKeys(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var rec *store.SigningKey
	for _, r := range recs {
		if r.ID == kid {
			rec = r
		}
	}
	switch {
	case kid == "":
		in.Signature.Error = "the header has no kid"
	case rec == nil:
		in.Signature.Error = "no published key of this data directory has this kid"
	default:
		in.Signature.KeyState = string(rec.State)
		in.Signature.Error = verifyJWS(raw, rec)
	}
	in.Signature.Valid = in.Signature.Error == ""

	reasons := []string{}
	if !in.Signature.Valid {
		reasons = append(reasons, "signature: "+in.Signature.Error)
	}
	if exp, ok := claims["exp"].(float64); ok {
		t := time.Unix(int64(exp), 0)
		expired := !now.Before(t)
		in.Expired, in.ExpiresAt = &expired, rfc3339(t)
		if expired {
			reasons = append(reasons, "expired at "+rfc3339(t))
		}
	} else {
		reasons = append(reasons, "no exp claim")
	}
	if nbf, ok := claims["nbf"].(float64); ok && now.Before(time.Unix(int64(nbf), 0)) {
		reasons = append(reasons, "not valid before "+rfc3339(time.Unix(int64(nbf), 0)))
	}
	// A revoked token is not valid, however good its signature (RFC 7009):
	// revoked by its jti, or with its refresh family.
	if jti, _ := claims["jti"].(string); jti != "" {
		keys := []string{jti}
		if fid, _ := claims["family_id"].(string); fid != "" {
			for _, f := range store.FamilyLineage(fid) {
				keys = append(keys, store.FamilyRevocation(f))
			}
		}
		revoked := false
		for _, k := range keys {
			r, err := ks.IsRevoked(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("check revocation: %w", err)
			}
			revoked = revoked || r
		}
		in.Revoked = &revoked
		if revoked {
			reasons = append(reasons, "revoked")
		}
	}
	in.Valid = len(reasons) == 0
	in.Reason = strings.Join(reasons, "; ")
	return in, nil
}

// verifyJWS checks the signature with the key's own algorithm only, so a
// token cannot pick another (e.g. HS256 keyed with the public key). It
// returns "" when the signature is good.
func verifyJWS(raw string, rec *store.SigningKey) string {
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(rec.PublicKey); err != nil {
		return "the stored public key is unreadable: " + err.Error()
	}
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(rec.Algorithm)})
	if err != nil {
		return fmt.Sprintf("not a JWS signed with %s, the algorithm of key %s", rec.Algorithm, rec.ID)
	}
	if _, err := obj.Verify(pub.Key); err != nil {
		return "the signature does not match key " + rec.ID
	}
	return ""
}

func inspectOpaque(ctx context.Context, ts store.Tokens, raw string, now time.Time) (*inspection, error) {
	rec, err := ts.GetToken(ctx, token.HashOpaque(raw))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("opaque token not found in this data directory's store (unknown, or deleted after expiry)")
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	v := &recordView{
		Kind:       string(rec.Kind),
		JTI:        rec.JTI,
		ClientID:   rec.ClientID,
		Subject:    rec.Subject,
		Scope:      rec.Scope,
		Audience:   orEmpty(rec.Audience),
		FamilyID:   rec.FamilyID,
		IssuedAt:   rfc3339(rec.IssuedAt),
		ExpiresAt:  rfc3339(rec.ExpiresAt),
		RevokedAt:  rfc3339(rec.RevokedAt),
		ConsumedAt: rfc3339(rec.ConsumedAt),
	}
	if len(rec.Actor) > 0 && json.Valid(rec.Actor) {
		v.Actor = rec.Actor
	}
	in := &inspection{Format: token.FormatOpaque, Record: v, ExpiresAt: v.ExpiresAt}
	wantPrefix := token.PrefixAccess
	if rec.Kind == store.TokenRefresh {
		wantPrefix = token.PrefixRefresh
	}
	expired := !now.Before(rec.ExpiresAt)
	in.Expired = &expired
	switch {
	case !strings.HasPrefix(raw, wantPrefix):
		in.Reason = "the prefix does not match the stored kind"
	case !rec.RevokedAt.IsZero():
		in.Reason = "revoked at " + v.RevokedAt
	case !rec.ConsumedAt.IsZero():
		in.Reason = "refresh token already used at " + v.ConsumedAt
	case expired:
		in.Reason = "expired at " + v.ExpiresAt
	default:
		in.Valid = true
	}
	return in, nil
}

func (in *inspection) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "format:\t%s\n", in.Format)
	if in.Signature != nil {
		s := in.Signature
		if s.Valid {
			fmt.Fprintf(tw, "signature:\tvalid (kid %s, %s, key %s)\n", s.KID, s.Alg, s.KeyState)
		} else {
			fmt.Fprintf(tw, "signature:\tINVALID: %s\n", s.Error)
		}
	}
	if in.Revoked != nil && *in.Revoked {
		fmt.Fprintf(tw, "revoked:\tREVOKED\n")
	}
	if in.Expired != nil {
		if *in.Expired {
			fmt.Fprintf(tw, "expiry:\tEXPIRED at %s\n", in.ExpiresAt)
		} else {
			fmt.Fprintf(tw, "expiry:\tvalid until %s\n", in.ExpiresAt)
		}
	}
	if r := in.Record; r != nil {
		fmt.Fprintf(tw, "kind:\t%s\n", r.Kind)
		fmt.Fprintf(tw, "client_id:\t%s\n", r.ClientID)
		fmt.Fprintf(tw, "subject:\t%s\n", r.Subject)
		fmt.Fprintf(tw, "scope:\t%s\n", r.Scope)
		fmt.Fprintf(tw, "audience:\t%s\n", listOrNone(r.Audience))
		if len(r.Actor) > 0 {
			fmt.Fprintf(tw, "act:\t%s\n", r.Actor)
		}
		fmt.Fprintf(tw, "jti:\t%s\n", r.JTI)
		if r.FamilyID != "" {
			fmt.Fprintf(tw, "family_id:\t%s\n", r.FamilyID)
		}
		fmt.Fprintf(tw, "issued_at:\t%s\n", r.IssuedAt)
		fmt.Fprintf(tw, "revoked:\t%s\n", dash(r.RevokedAt))
		if r.Kind == string(store.TokenRefresh) {
			fmt.Fprintf(tw, "consumed:\t%s\n", dash(r.ConsumedAt))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, part := range []struct {
		name string
		v    map[string]any
	}{{"header", in.Header}, {"claims", in.Claims}} {
		if part.v == nil {
			continue
		}
		b, err := json.MarshalIndent(part.v, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s:\n%s\n", part.name, b)
	}
	for _, n := range in.notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

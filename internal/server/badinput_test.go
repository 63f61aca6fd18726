package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/endpoint/discovery"
	"github.com/keybridge/sts/internal/server"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
	"github.com/keybridge/sts/internal/token"
	"github.com/keybridge/sts/oauth"
)

// dbState is what a refused request must leave as it was: the row count
// and a digest of every row of the tables that hold state.
type dbState struct {
	counts map[string]int
	digest map[string]string
}

func snapshotDB(t *testing.T, s *ststest.STS) dbState {
	t.Helper()
	ctx := context.Background()
	db := s.Store.DB()
	st := dbState{counts: map[string]int{}, digest: map[string]string{}}
	for _, table := range []string{"clients", "tokens", "revoked_jtis", "signing_keys"} {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		st.counts[table] = n
		rows, err := db.QueryContext(ctx, `SELECT * FROM `+table+` ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%q\n", vals)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		st.digest[table] = hex.EncodeToString(h.Sum(nil))
	}
	return st
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// handJWT builds a compact JWS by hand with any header, signed by sign
// (nil for an empty signature).
func handJWT(t *testing.T, header map[string]any, c *token.Claims, sign func(input string) []byte) string {
	t.Helper()
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, c))
	var sig []byte
	if sign != nil {
		sig = sign(input)
	}
	return input + "." + b64(sig)
}

func hs256(key []byte) func(string) []byte {
	return func(input string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// TestBadInputChangesNothing sends every kind of bad request to the token
// endpoint. Each gets a clear OAuth error with a description, leaves the
// clients, tokens, revocations and keys exactly as they were, and is
// audited as refused (SPEC §6, §7: every exchange, granted or refused, is
// an audit event).
func TestBadInputChangesNothing(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	ctx := context.Background()
	user := s.CreateClient(func(c *store.Client) {
		c.Scopes = []string{"api", "admin"}
		c.Audiences = []string{rsResource}
	})
	rs := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.Scopes = []string{"api", "write"}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	plain := s.CreateClient(func(c *store.Client) { c.Audiences, c.Resources = []string{backend}, []string{rsResource} })
	// stranger may exchange for the backend, but serves no resource the
	// subject token is for.
	stranger := s.CreateClient(func(c *store.Client) { c.Audiences = []string{backend} })
	ccOnly := s.CreateClient(func(c *store.Client) { c.GrantTypes = []string{oauth.GrantTypeClientCredentials} })
	refresher := s.CreateClient(func(c *store.Client) {
		c.Audiences, c.Resources = []string{backend}, []string{rsResource}
		c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken)
	})
	opaqueUser := s.CreateClient(func(c *store.Client) {
		c.TokenFormat = store.TokenFormatOpaque
		c.Audiences = []string{rsResource}
	})
	disabled := s.CreateClient(func(c *store.Client) { c.Status = store.ClientDisabled })
	pending := s.CreateClient(func(c *store.Client) { c.Status = store.ClientPending })

	subject := s.ClientCredentials(user, nil)
	actor := s.ClientCredentials(plain, nil)
	opaqueSubject := s.ClientCredentials(opaqueUser, nil)
	revokedJWT := s.ClientCredentials(user, nil)
	revokedOpaque := s.ClientCredentials(opaqueUser, nil)
	for c, tok := range map[*ststest.Client]string{user: revokedJWT, opaqueUser: revokedOpaque} {
		if r := s.PostForm(server.RevokePath, c, url.Values{"token": {tok}}); r.Status != http.StatusOK {
			t.Fatalf("revoke: %d %s", r.Status, r.Body)
		}
	}
	othersRefresh := wantOK(t, s.Exchange(refresher, subject, oauth.TokenTypeAccessToken, nil)).RefreshToken
	if othersRefresh == "" {
		t.Fatal("no refresh token to steal")
	}
	snap := s.Keys.Snapshot()
	kid := snap.Current.ID
	pub := snap.Current.Public.Key.(*ecdsa.PublicKey)
	jwkJSON, err := json.Marshal(snap.Current.Public)
	if err != nil {
		t.Fatal(err)
	}
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	xy := point[1:] // x || y, without the 0x04 of the uncompressed form
	_, meta := metadata(t, s, discovery.MetadataPath)
	signedMetadata, _ := meta["signed_metadata"].(string)
	if signedMetadata == "" {
		t.Fatal("no signed_metadata")
	}

	typJWT, err := s.Server.Tokens.SignJWT(validClaims(s), oauth.JWTTypeJWT)
	if err != nil {
		t.Fatal(err)
	}
	at := func(edit func(*token.Claims)) string { return mint(t, s, edit) }
	now := time.Now()
	hdr := func(alg string) map[string]any { return map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid} }

	// ex is a valid exchange request by rs, changed by kv (pairs of name
	// and value; a value "-" deletes the parameter).
	ex := func(kv ...string) url.Values {
		f := url.Values{
			"grant_type":         {oauth.GrantTypeTokenExchange},
			"subject_token":      {subject},
			"subject_token_type": {oauth.TokenTypeAccessToken},
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}
	withSubject := func(tok string, kv ...string) url.Values {
		return ex(append([]string{"subject_token", tok}, kv...)...)
	}
	basic := ststest.BasicAuth(rs.ID, rs.Secret)
	form := "application/x-www-form-urlencoded"
	post := func(body, auth, contentType string) func() *http.Request {
		return func() *http.Request {
			req := newRequest(t, http.MethodPost, s.URL+server.TokenPath, body, contentType)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			return req
		}
	}
	postForm := func(f url.Values) func() *http.Request { return post(f.Encode(), basic, form) }
	as := func(c *ststest.Client, f url.Values) func() *http.Request {
		return post(f.Encode(), ststest.BasicAuth(c.ID, c.Secret), form)
	}
	big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 70<<10)

	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   oauth.ErrorCode
	}{
		// Malformed requests.
		{"missing grant_type", postForm(ex("grant_type", "-")), 400, oauth.ErrInvalidRequest},
		{"empty body", post("", basic, form), 400, oauth.ErrInvalidRequest},
		{"missing subject_token", postForm(ex("subject_token", "-")), 400, oauth.ErrInvalidRequest},
		{"missing subject_token_type", postForm(ex("subject_token_type", "-")), 400, oauth.ErrInvalidRequest},
		{"actor_token without actor_token_type", postForm(ex("actor_token", actor)), 400, oauth.ErrInvalidRequest},
		{"actor_token_type without actor_token", postForm(ex("actor_token_type", oauth.TokenTypeAccessToken)), 400, oauth.ErrInvalidRequest},
		{"missing refresh_token", as(refresher, url.Values{"grant_type": {oauth.GrantTypeRefreshToken}}), 400, oauth.ErrInvalidRequest},
		{"repeated grant_type", post(ex().Encode()+"&grant_type="+url.QueryEscape(oauth.GrantTypeTokenExchange), basic, form), 400, oauth.ErrInvalidRequest},
		{"repeated subject_token", post(ex().Encode()+"&subject_token=x", basic, form), 400, oauth.ErrInvalidRequest},
		{"repeated scope", post(ex().Encode()+"&scope=api&scope=api", basic, form), 400, oauth.ErrInvalidRequest},
		{"repeated client_secret", post(ex().Encode()+"&client_id="+rs.ID+"&client_secret=a&client_secret=b", "", form), 400, oauth.ErrInvalidRequest},
		{"unsupported grant_type", postForm(url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}), 400, oauth.ErrUnsupportedGrantType},
		{"grant not allowed", as(ccOnly, ex()), 400, oauth.ErrUnauthorizedClient},
		{"malformed scope", postForm(ex("scope", `"api"`)), 400, oauth.ErrInvalidScope},

		// Token types.
		{"unknown subject_token_type", postForm(ex("subject_token_type", "urn:example:token-type:custom")), 400, oauth.ErrInvalidRequest},
		{"short subject_token_type", postForm(ex("subject_token_type", "access_token")), 400, oauth.ErrInvalidRequest},
		{"saml2 subject_token_type", postForm(ex("subject_token_type", oauth.TokenTypeSAML2)), 400, oauth.ErrInvalidRequest},
		{"saml1 subject_token_type", postForm(ex("subject_token_type", oauth.TokenTypeSAML1)), 400, oauth.ErrInvalidRequest},
		{"id_token subject_token_type", postForm(ex("subject_token_type", oauth.TokenTypeIDToken)), 400, oauth.ErrInvalidRequest},
		{"unknown actor_token_type", postForm(ex("actor_token", actor, "actor_token_type", "urn:example:x")), 400, oauth.ErrInvalidRequest},
		{"refresh_token actor_token_type", postForm(ex("actor_token", othersRefresh, "actor_token_type", oauth.TokenTypeRefreshToken)), 400, oauth.ErrInvalidRequest},
		{"unknown requested_token_type", postForm(ex("requested_token_type", "urn:example:x")), 400, oauth.ErrInvalidRequest},
		{"saml2 requested_token_type", postForm(ex("requested_token_type", oauth.TokenTypeSAML2)), 400, oauth.ErrInvalidRequest},
		{"refresh_token requested without the refresh grant", as(plain, ex("requested_token_type", oauth.TokenTypeRefreshToken)), 400, oauth.ErrInvalidRequest},
		{"opaque token declared jwt", postForm(withSubject(opaqueSubject, "subject_token_type", oauth.TokenTypeJWT)), 400, oauth.ErrInvalidRequest},

		// Bad subject and actor tokens.
		{"expired jwt", postForm(withSubject(at(func(c *token.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Minute).Unix()
		}))), 400, oauth.ErrInvalidRequest},
		{"nbf in the future", postForm(withSubject(at(func(c *token.Claims) { c.NotBefore = now.Add(time.Hour).Unix() }))), 400, oauth.ErrInvalidRequest},
		{"forged, server kid", postForm(withSubject(forge(t, kid, validClaims(s)))), 400, oauth.ErrInvalidRequest},
		{"forged, unknown kid", postForm(withSubject(forge(t, "kid-"+token.NewID(), validClaims(s)))), 400, oauth.ErrInvalidRequest},
		{"alg none", postForm(withSubject(handJWT(t, hdr("none"), validClaims(s), nil))), 400, oauth.ErrInvalidRequest},
		{"alg none, no kid", postForm(withSubject(handJWT(t, map[string]any{"alg": "none", "typ": "at+jwt"}, validClaims(s), nil))), 400, oauth.ErrInvalidRequest},
		{"HS256 keyed with the public JWK", postForm(withSubject(handJWT(t, hdr("HS256"), validClaims(s), hs256(jwkJSON)))), 400, oauth.ErrInvalidRequest},
		{"HS256 keyed with x||y", postForm(withSubject(handJWT(t, hdr("HS256"), validClaims(s), hs256(xy)))), 400, oauth.ErrInvalidRequest},
		{"HS256 keyed with the uncompressed point", postForm(withSubject(handJWT(t, hdr("HS256"), validClaims(s), hs256(point)))), 400, oauth.ErrInvalidRequest},
		{"wrong issuer", postForm(withSubject(at(func(c *token.Claims) { c.Issuer = "https://evil.example.com" }))), 400, oauth.ErrInvalidRequest},
		{"missing jti", postForm(withSubject(at(func(c *token.Claims) { c.ID = "" }))), 400, oauth.ErrInvalidRequest},
		{"missing sub", postForm(withSubject(at(func(c *token.Claims) { c.Subject = "" }))), 400, oauth.ErrInvalidRequest},
		{"missing exp", postForm(withSubject(at(func(c *token.Claims) { c.Expiry = 0 }))), 400, oauth.ErrInvalidRequest},
		{"typ not at+jwt (signed_metadata)", postForm(withSubject(signedMetadata)), 400, oauth.ErrInvalidRequest},
		{"typ not at+jwt (jwt typ JWT)", postForm(withSubject(typJWT)), 400, oauth.ErrInvalidRequest},
		{"opaque token that does not exist", postForm(withSubject(token.PrefixAccess + token.NewID())), 400, oauth.ErrInvalidRequest},
		{"garbage subject", postForm(withSubject("%00\x01not-a-token")), 400, oauth.ErrInvalidRequest},
		{"revoked jwt", postForm(withSubject(revokedJWT)), 400, oauth.ErrInvalidRequest},
		{"revoked opaque", postForm(withSubject(revokedOpaque)), 400, oauth.ErrInvalidRequest},
		{"another client's refresh token as subject", postForm(withSubject(othersRefresh, "subject_token_type", oauth.TokenTypeRefreshToken)), 400, oauth.ErrInvalidRequest},
		{"refresh token declared access_token", as(refresher, withSubject(othersRefresh)), 400, oauth.ErrInvalidRequest},
		{"another client's refresh token, refresh grant", postForm(url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {othersRefresh}}), 400, oauth.ErrInvalidGrant},
		{"access token at the refresh grant", postForm(url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {subject}}), 400, oauth.ErrInvalidGrant},
		{"cnf-bound subject", postForm(withSubject(at(func(c *token.Claims) {
			c.Cnf = json.RawMessage(`{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}`)
		}))), 400, oauth.ErrInvalidRequest},
		{"cnf-bound actor", postForm(ex("actor_token", at(func(c *token.Claims) {
			c.Cnf = json.RawMessage(`{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}`)
		}), "actor_token_type", oauth.TokenTypeAccessToken)), 400, oauth.ErrInvalidRequest},
		{"invalid actor token", postForm(ex("actor_token", "garbage", "actor_token_type", oauth.TokenTypeAccessToken)), 400, oauth.ErrInvalidRequest},
		{"revoked actor token", postForm(ex("actor_token", revokedJWT, "actor_token_type", oauth.TokenTypeAccessToken)), 400, oauth.ErrInvalidRequest},
		{"may_act names another party", postForm(withSubject(at(func(c *token.Claims) { c.MayAct = &oauth.Actor{Subject: "mallory"} }))), 400, oauth.ErrInvalidRequest},
		// Issue 8, finding 4: a subject token neither issued nor addressed
		// to the client, and an actor token about another party.
		{"subject token not addressed to the client", as(stranger, ex()), 400, oauth.ErrInvalidRequest},
		{"opaque subject token not addressed to the client", as(stranger, withSubject(opaqueSubject)), 400, oauth.ErrInvalidRequest},
		{"actor token about another party", postForm(ex("actor_token", at(func(c *token.Claims) { c.Subject, c.ClientID = user.ID, rs.ID }),
			"actor_token_type", oauth.TokenTypeAccessToken)), 400, oauth.ErrInvalidRequest},

		// Escalation.
		{"scope beyond the subject", postForm(ex("scope", "write")), 400, oauth.ErrInvalidScope},
		{"scope beyond the client", postForm(ex("scope", "admin")), 400, oauth.ErrInvalidScope},
		{"scope beyond both", postForm(ex("scope", "api root")), 400, oauth.ErrInvalidScope},
		{"audience not allowed", postForm(ex("audience", "https://evil.example.com")), 400, oauth.ErrInvalidTarget},
		{"resource not allowed", postForm(ex("resource", "https://evil.example.com/api")), 400, oauth.ErrInvalidTarget},
		{"one resource of two not allowed", post(ex("resource", backend).Encode()+"&resource="+url.QueryEscape("https://evil.example.com"), basic, form), 400, oauth.ErrInvalidTarget},
		{"resource with fragment", postForm(ex("resource", backend+"#x")), 400, oauth.ErrInvalidTarget},
		{"relative resource", postForm(ex("resource", "/api")), 400, oauth.ErrInvalidTarget},
		{"client_credentials audience not allowed", postForm(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "audience": {"https://evil.example.com"}}), 400, oauth.ErrInvalidTarget},
		{"client_credentials scope not allowed", postForm(url.Values{"grant_type": {oauth.GrantTypeClientCredentials}, "scope": {"admin"}}), 400, oauth.ErrInvalidScope},

		// Client authentication.
		{"wrong secret", post(ex().Encode(), ststest.BasicAuth(rs.ID, rs.Secret+"x"), form), 401, oauth.ErrInvalidClient},
		{"unknown client", post(ex().Encode(), ststest.BasicAuth("c-nobody", rs.Secret), form), 401, oauth.ErrInvalidClient},
		{"disabled client", as(disabled, ex()), 401, oauth.ErrInvalidClient},
		{"pending client", as(pending, ex()), 401, oauth.ErrInvalidClient},
		{"no credentials", post(ex().Encode(), "", form), 401, oauth.ErrInvalidClient},
		{"credentials in the query only", func() *http.Request {
			q := url.Values{"client_id": {rs.ID}, "client_secret": {rs.Secret}}
			return newRequest(t, http.MethodPost, s.URL+server.TokenPath+"?"+q.Encode(), ex().Encode(), form)
		}, 401, oauth.ErrInvalidClient},
		{"Basic and client_secret_post", post(ex("client_id", rs.ID, "client_secret", rs.Secret).Encode(), basic, form), 400, oauth.ErrInvalidRequest},
		{"Basic and a different client_id", post(ex("client_id", plain.ID).Encode(), basic, form), 400, oauth.ErrInvalidRequest},

		// Transport.
		{"oversized body", post(big, basic, form), 413, oauth.ErrInvalidRequest},
		{"oversized chunked body", func() *http.Request {
			req := newRequest(t, http.MethodPost, s.URL+server.TokenPath, "", form)
			req.Body = io.NopCloser(io.LimitReader(strings.NewReader(big), int64(len(big))))
			req.ContentLength = -1
			req.Header.Set("Authorization", basic)
			return req
		}, 413, oauth.ErrInvalidRequest},
		{"GET", func() *http.Request {
			req := newRequest(t, http.MethodGet, s.URL+server.TokenPath+"?"+ex().Encode(), "", "")
			req.Header.Set("Authorization", basic)
			return req
		}, 405, oauth.ErrInvalidRequest},
		{"application/json", func() *http.Request {
			b, _ := json.Marshal(map[string]string{"grant_type": oauth.GrantTypeTokenExchange, "subject_token": subject, "subject_token_type": oauth.TokenTypeAccessToken})
			return post(string(b), basic, "application/json")()
		}, 400, oauth.ErrInvalidRequest},
		{"no content type", post(ex().Encode(), basic, ""), 400, oauth.ErrInvalidRequest},
		{"multipart", post(ex().Encode(), basic, "multipart/form-data; boundary=x"), 400, oauth.ErrInvalidRequest},
		{"malformed form encoding", post(ex().Encode()+"&scope=%zz", basic, form), 400, oauth.ErrInvalidRequest},
		{"malformed form encoding in a name", post("grant_type=client_credentials&%zz=1", basic, form), 400, oauth.ErrInvalidRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshotDB(t, s)
			req := tt.req()
			id := fmt.Sprintf("badinput-%03d", i)
			req.Header.Set("X-Request-Id", id)
			r := s.Do(req)
			wantError(t, r, tt.status, tt.code)
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if after := snapshotDB(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("state changed:\nbefore %v\nafter  %v", before, after)
			}
			var rec *store.AuditRecord
			recs, err := s.ListAudit(ctx, store.AuditFilter{Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			for i := range recs {
				if recs[i].RequestID == id {
					rec = &recs[i]
					break
				}
			}
			if rec == nil {
				// The repeat of an identical refusal of this window is
				// counted, written when the window ends (checked below).
				for i := range recs {
					if recs[i].Decision == store.DecisionRefused && recs[i].Error == string(tt.code) &&
						strings.HasPrefix(recs[i].RequestID, "badinput-") {
						rec = &recs[i]
						break
					}
				}
			}
			switch {
			case rec == nil:
				t.Errorf("no audit record for request %s", id)
			case rec.Decision != store.DecisionRefused || rec.Error != string(tt.code) || rec.JTI != "":
				t.Errorf("audit record %+v", rec)
			}
		})
	}
	// The same server still grants a good request, so the refusals above
	// are about the input.
	wantOK(t, s.Exchange(rs, subject, oauth.TokenTypeAccessToken, nil))

	// Once the server stops, every refusal is accounted for: each one
	// has its own record or is counted in its window's record.
	s.Server.Close()
	recs, err := s.ListAudit(ctx, store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range recs {
		if strings.HasPrefix(r.RequestID, "badinput-") {
			refused += r.Count
		}
	}
	if refused != len(tests) {
		t.Errorf("the audit accounts for %d refusals, want %d", refused, len(tests))
	}
}

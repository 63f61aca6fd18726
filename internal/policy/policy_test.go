package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/oauth"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

var limits = Limits{Issuer: "https://sts.example.com", AccessTokenTTL: time.Hour, RefreshTokenTTL: 24 * time.Hour, MaxTokenTTL: 2 * time.Hour}

func client() *store.Client {
	return &store.Client{
		ID:          "rs08",
		GrantTypes:  []string{oauth.GrantTypeTokenExchange, oauth.GrantTypeClientCredentials},
		Audiences:   []string{"https://a.example.com", "https://b.example.com"},
		Scopes:      []string{"read", "write"},
		TokenFormat: store.TokenFormatJWT,
	}
}

func TestDecide(t *testing.T) {
	exchange := func(r Request) Request { r.GrantType = oauth.GrantTypeTokenExchange; return r }
	tests := []struct {
		name    string
		client  func(*store.Client)
		subject Subject
		req     Request
		wantErr oauth.ErrorCode
		check   func(t *testing.T, d Decision)
	}{
		{name: "scope defaults to subject ∩ client", subject: Subject{Scopes: []string{"read", "admin"}},
			req: exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if !slices.Equal(d.Scope, []string{"read"}) || !d.ScopeChanged {
					t.Errorf("scope %v changed=%v", d.Scope, d.ScopeChanged)
				}
			}},
		{name: "scope beyond subject refused", subject: Subject{Scopes: []string{"read"}},
			req: exchange(Request{Scope: []string{"write"}, Targets: []string{"https://a.example.com"}}), wantErr: oauth.ErrInvalidScope},
		{name: "scope beyond client refused", subject: Subject{Scopes: []string{"read", "admin"}},
			req: exchange(Request{Scope: []string{"admin"}, Targets: []string{"https://a.example.com"}}), wantErr: oauth.ErrInvalidScope},
		{name: "requested scope kept, unchanged", subject: Subject{Scopes: []string{"read", "write"}},
			req: exchange(Request{Scope: []string{"write"}, Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if !slices.Equal(d.Scope, []string{"write"}) || d.ScopeChanged {
					t.Errorf("scope %v changed=%v", d.Scope, d.ScopeChanged)
				}
			}},
		{name: "client_credentials scope bounded by client only", req: Request{GrantType: oauth.GrantTypeClientCredentials, Targets: []string{"https://b.example.com"}},
			check: func(t *testing.T, d Decision) {
				if !slices.Equal(d.Scope, []string{"read", "write"}) {
					t.Errorf("scope %v", d.Scope)
				}
			}},
		{name: "audience not allowed", req: exchange(Request{Targets: []string{"https://evil.example.com"}}), wantErr: oauth.ErrInvalidTarget},
		{name: "several allowed, none named", req: exchange(Request{}), wantErr: oauth.ErrInvalidTarget},
		{name: "one allowed, none named: that one", client: func(c *store.Client) { c.Audiences = c.Audiences[:1] }, req: exchange(Request{}),
			check: func(t *testing.T, d Decision) {
				if !slices.Equal(d.Audience, []string{"https://a.example.com"}) {
					t.Errorf("aud %v", d.Audience)
				}
			}},
		{name: "none allowed: the issuer", client: func(c *store.Client) { c.Audiences = nil }, req: exchange(Request{}),
			check: func(t *testing.T, d Decision) {
				if !slices.Equal(d.Audience, []string{limits.Issuer}) {
					t.Errorf("aud %v", d.Audience)
				}
			}},
		{name: "fixed audience narrows", subject: Subject{Audience: []string{"https://a.example.com"}},
			req: exchange(Request{Targets: []string{"https://b.example.com"}}), wantErr: oauth.ErrInvalidTarget},
		{name: "expiry capped by subject", subject: Subject{ExpiresAt: now.Add(10 * time.Minute)},
			req: exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if !d.Expiry.Equal(now.Add(10 * time.Minute)) {
					t.Errorf("exp %v", d.Expiry)
				}
			}},
		{name: "client ttl capped by max", client: func(c *store.Client) { c.AccessTokenTTL = 48 * time.Hour },
			req: exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if !d.Expiry.Equal(now.Add(limits.MaxTokenTTL)) {
					t.Errorf("exp %v", d.Expiry)
				}
			}},
		{name: "subject already expired", subject: Subject{ExpiresAt: now.Add(-time.Second)},
			req: exchange(Request{Targets: []string{"https://a.example.com"}}), wantErr: oauth.ErrInvalidRequest},
		{name: "unsupported requested type", req: exchange(Request{RequestedTokenType: oauth.TokenTypeSAML2, Targets: []string{"https://a.example.com"}}), wantErr: oauth.ErrInvalidRequest},
		{name: "refresh type needs the refresh grant", req: exchange(Request{RequestedTokenType: oauth.TokenTypeRefreshToken, Targets: []string{"https://a.example.com"}}), wantErr: oauth.ErrInvalidRequest},
		{name: "default type of a JWT client is jwt", req: exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if d.IssuedTokenType != oauth.TokenTypeJWT || d.Format != store.TokenFormatJWT || d.Refresh {
					t.Errorf("%+v", d)
				}
			}},
		{name: "opaque client gets access_token", client: func(c *store.Client) { c.TokenFormat = store.TokenFormatOpaque },
			req: exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if d.IssuedTokenType != oauth.TokenTypeAccessToken || d.Format != store.TokenFormatOpaque {
					t.Errorf("%+v", d)
				}
			}},
		{name: "refresh beside the token when allowed", client: func(c *store.Client) { c.GrantTypes = append(c.GrantTypes, oauth.GrantTypeRefreshToken) },
			subject: Subject{ExpiresAt: now.Add(30 * time.Minute)},
			req:     exchange(Request{Targets: []string{"https://a.example.com"}}),
			check: func(t *testing.T, d Decision) {
				if !d.Refresh || !d.RefreshExpiry.Equal(now.Add(30*time.Minute)) {
					t.Errorf("refresh %v until %v", d.Refresh, d.RefreshExpiry)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client()
			if tt.client != nil {
				tt.client(c)
			}
			d, err := Decide(c, tt.subject, tt.req, limits, now)
			if tt.wantErr != "" {
				if err == nil || err.Code != tt.wantErr || err.Description == "" {
					t.Fatalf("got %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

func TestDelegation(t *testing.T) {
	prior := &oauth.Actor{Subject: "gateway"}
	tests := []struct {
		name        string
		impersonate bool
		subject     Party
		actor       *Party
		want        *oauth.Actor
		wantErr     bool
	}{
		{name: "client becomes actor", subject: Party{Subject: "alice"}, want: &oauth.Actor{Subject: "rs08", ClientID: "rs08"}},
		{name: "client chains after prior actor", subject: Party{Subject: "alice", Act: prior}, want: &oauth.Actor{Subject: "rs08", ClientID: "rs08", Actor: prior}},
		{name: "own token keeps its chain", subject: Party{Subject: "rs08", Act: prior}, want: prior},
		{name: "impersonation drops the client", impersonate: true, subject: Party{Subject: "alice"}, want: nil},
		{name: "impersonation keeps prior chain", impersonate: true, subject: Party{Subject: "alice", Act: prior}, want: prior},
		{name: "actor token of the client itself", subject: Party{Subject: "alice", Act: prior}, actor: &Party{Subject: "rs08", ClientID: "rs08"},
			want: &oauth.Actor{Subject: "rs08", Actor: prior}},
		{name: "impersonating client names another actor", impersonate: true, subject: Party{Subject: "alice", Act: prior}, actor: &Party{Subject: "bob", ClientID: "svc"},
			want: &oauth.Actor{Subject: "bob", ClientID: "svc", Actor: prior}},
		// Issue 8 finding 4: evil's token about frontend (sub=frontend,
		// client_id=evil) named frontend as the actor.
		{name: "actor token about another party refused", subject: Party{Subject: "alice"},
			actor: &Party{Subject: "frontend", ClientID: "rs08", Act: &oauth.Actor{Subject: "rs08", ClientID: "rs08"}}, wantErr: true},
		{name: "actor token issued to another client refused", subject: Party{Subject: "alice"}, actor: &Party{Subject: "rs08", ClientID: "svc"}, wantErr: true},
		{name: "actor chain nested inside act, subject chain innermost", subject: Party{Subject: "alice", Act: prior},
			actor: &Party{Subject: "rs08", ClientID: "rs08", Act: &oauth.Actor{Subject: "agent", ClientID: "agent"}},
			want:  &oauth.Actor{Subject: "rs08", Actor: &oauth.Actor{Subject: "agent", ClientID: "agent", Actor: prior}}},
		{name: "actor chain kept without subject chain", subject: Party{Subject: "alice"},
			actor: &Party{Subject: "rs08", ClientID: "rs08", Act: &oauth.Actor{Subject: "agent"}},
			want:  &oauth.Actor{Subject: "rs08", Actor: &oauth.Actor{Subject: "agent"}}},
		{name: "may_act names the actor", impersonate: true, subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "bob"}}, actor: &Party{Subject: "bob"},
			want: &oauth.Actor{Subject: "bob"}},
		{name: "may_act names the client acting by its own actor token", subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "rs08"}}, actor: &Party{Subject: "rs08", ClientID: "rs08"},
			want: &oauth.Actor{Subject: "rs08"}},
		{name: "may_act names the client with its client_id", subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "rs08", ClientID: "rs08"}}, actor: &Party{Subject: "rs08", ClientID: "rs08"},
			want: &oauth.Actor{Subject: "rs08"}},
		{name: "may_act names someone else", impersonate: true, subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "carol"}}, actor: &Party{Subject: "bob"}, wantErr: true},
		{name: "may_act checked without actor token", subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "carol"}}, wantErr: true},
		{name: "may_act checked under impersonation", impersonate: true, subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "carol"}}, wantErr: true},
		{name: "may_act client_id must match", impersonate: true, subject: Party{Subject: "alice", MayAct: &oauth.Actor{Subject: "bob", ClientID: "other"}}, actor: &Party{Subject: "bob", ClientID: "svc"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client()
			c.AllowImpersonation = tt.impersonate
			got, err := Delegation(c, tt.subject, tt.actor, DefaultMaxActDepth)
			if tt.wantErr {
				if err == nil || err.Code != oauth.ErrInvalidRequest {
					t.Fatalf("got %v, want invalid_request", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalActor(got, tt.want) {
				t.Errorf("act %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDelegationDepthBounded(t *testing.T) {
	chain := func(n int) *oauth.Actor {
		var a *oauth.Actor
		for i := 0; i < n; i++ {
			a = &oauth.Actor{Subject: "hop", Actor: a}
		}
		return a
	}
	for _, max := range []int{DefaultMaxActDepth, 8} {
		if _, err := Delegation(client(), Party{Subject: "alice", Act: chain(max)}, nil, max); err == nil {
			t.Fatalf("a chain beyond %d was accepted", max)
		}
		// The actor's chain and the subject's chain count together.
		self := &Party{Subject: "rs08", ClientID: "rs08"}
		self.Act = chain(max - 1 - max/2 + 1)
		if _, err := Delegation(client(), Party{Subject: "alice", Act: chain(max / 2)}, self, max); err == nil {
			t.Fatalf("actor and subject chains beyond %d together were accepted", max)
		}
		self.Act = chain(max - 1 - max/2)
		got, err := Delegation(client(), Party{Subject: "alice", Act: chain(max / 2)}, self, max)
		if err != nil || got.Depth() != max {
			t.Fatalf("depth %d, %v; want %d", got.Depth(), err, max)
		}
	}
}

func TestDelegationLeavesTokensUntouched(t *testing.T) {
	inner := &oauth.Actor{Subject: "agent"}
	actor := &Party{Subject: "rs08", ClientID: "rs08", Act: inner}
	prior := &oauth.Actor{Subject: "gateway"}
	if _, err := Delegation(client(), Party{Subject: "alice", Act: prior}, actor, DefaultMaxActDepth); err != nil {
		t.Fatal(err)
	}
	if inner.Actor != nil {
		t.Fatalf("the actor token's chain was changed: %+v", inner)
	}
}

func TestMayExchange(t *testing.T) {
	tests := []struct {
		name    string
		client  func(*store.Client)
		subject Party
		ok      bool
	}{
		{name: "own token", subject: Party{Subject: "rs08", ClientID: "rs08", Audience: []string{limits.Issuer}}, ok: true},
		{name: "another subject's token issued to the client", subject: Party{Subject: "alice", ClientID: "rs08"}, ok: true},
		{name: "audience names the client id", subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{"other", "rs08"}}, ok: true},
		{name: "audience names a resource the client serves", client: func(c *store.Client) { c.Resources = []string{"https://rs08.example.com"} },
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{"https://rs08.example.com"}}, ok: true},
		{name: "token for another resource server", client: func(c *store.Client) { c.Resources = []string{"https://rs08.example.com"} },
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{"https://rs09.example.com"}}},
		{name: "token for this server only", subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{limits.Issuer}}},
		{name: "no audience", subject: Party{Subject: "frontend", ClientID: "frontend"}},
		{name: "resource prefix is not the resource", client: func(c *store.Client) { c.Resources = []string{"https://rs08.example.com"} },
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{"https://rs08.example.com/admin"}}},
		{name: "audiences the client may obtain are not resources it serves",
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{"https://a.example.com"}}},
		{name: "operator's exchange-any", client: func(c *store.Client) { c.ExchangeAny = true },
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{limits.Issuer}}, ok: true},
		{name: "introspect-any is not exchange-any", client: func(c *store.Client) { c.IntrospectAny = true },
			subject: Party{Subject: "frontend", ClientID: "frontend", Audience: []string{limits.Issuer}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client()
			if tt.client != nil {
				tt.client(c)
			}
			err := MayExchange(c, tt.subject)
			if tt.ok != (err == nil) {
				t.Fatalf("ok %v, got %v", tt.ok, err)
			}
			if err != nil && (err.Code != oauth.ErrInvalidRequest || err.Description == "") {
				t.Fatalf("got %v, want invalid_request with a description", err)
			}
		})
	}
}

func TestMayIntrospect(t *testing.T) {
	aud := []string{"https://rs08.example.com"}
	tests := []struct {
		name    string
		client  func(*store.Client)
		token   Party
		refresh bool
		ok      bool
	}{
		{name: "own access token", token: Party{ClientID: "rs08", Audience: []string{"https://backend.example.com"}}, ok: true},
		{name: "audience by client id", token: Party{ClientID: "frontend", Audience: []string{"rs08"}}, ok: true},
		{name: "audience by resource", client: func(c *store.Client) { c.Resources = aud }, token: Party{ClientID: "frontend", Audience: aud}, ok: true},
		{name: "someone else's token", token: Party{ClientID: "frontend", Audience: aud}},
		{name: "introspect-any", client: func(c *store.Client) { c.IntrospectAny = true }, token: Party{ClientID: "frontend", Audience: aud}, ok: true},
		{name: "exchange-any is not introspect-any", client: func(c *store.Client) { c.ExchangeAny = true }, token: Party{ClientID: "frontend", Audience: aud}},
		{name: "own refresh token", refresh: true, token: Party{ClientID: "rs08"}, ok: true},
		{name: "refresh token of the audience's client", refresh: true, client: func(c *store.Client) { c.Resources = aud }, token: Party{ClientID: "frontend", Audience: aud}},
		{name: "refresh token under introspect-any", refresh: true, client: func(c *store.Client) { c.IntrospectAny = true }, token: Party{ClientID: "frontend", Audience: aud}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client()
			if tt.client != nil {
				tt.client(c)
			}
			if got := MayIntrospect(c, tt.token, tt.refresh); got != tt.ok {
				t.Fatalf("MayIntrospect = %v, want %v", got, tt.ok)
			}
		})
	}
}

func equalActor(a, b *oauth.Actor) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Subject == b.Subject && a.ClientID == b.ClientID && a.Issuer == b.Issuer && equalActor(a.Actor, b.Actor)
}

func TestValidTarget(t *testing.T) {
	for s, want := range map[string]bool{
		"https://backend.example.com/api": true,
		"urn:example:cooperation-context": true,
		"/relative":                       false,
		"https://a.example.com/#frag":     false,
		"https://a.example.com/#":         false,
		"backend":                         false,
	} {
		if got := ValidTarget(s); got != want {
			t.Errorf("ValidTarget(%q) = %v", s, got)
		}
	}
}

func TestDelegationNoRepeatedHop(t *testing.T) {
	c := client()
	act := &oauth.Actor{Subject: c.ID, ClientID: c.ID}
	got, err := Delegation(c, Party{Subject: "alice", Act: act}, nil, DefaultMaxActDepth)
	if err != nil || !equalActor(got, act) {
		t.Fatalf("act %+v %v: the client already acting must not be nested again", got, err)
	}
	// Nor when it acts again through its own actor token.
	got, err = Delegation(c, Party{Subject: "alice", Act: act}, &Party{Subject: c.ID, ClientID: c.ID}, DefaultMaxActDepth)
	if err != nil || !equalActor(got, act) {
		t.Fatalf("act %+v %v: the client already acting must not be nested again", got, err)
	}
	// A different party acting after it is a new hop.
	c.AllowImpersonation = true
	got, err = Delegation(c, Party{Subject: "alice", Act: act}, &Party{Subject: "bob"}, DefaultMaxActDepth)
	if err != nil || got.Depth() != 2 {
		t.Fatalf("act %+v %v", got, err)
	}
}

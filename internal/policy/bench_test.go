package policy

import (
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
)

// BenchmarkDecide is the policy of a token exchange for one resource, the
// scope narrowed to the subject's.
func BenchmarkDecide(b *testing.B) {
	c := client()
	s := Subject{ID: "alice", Scopes: []string{"read", "admin"}, ExpiresAt: now.Add(time.Hour),
		Act: &oauth.Actor{Subject: "rs08", ClientID: "rs08"}}
	r := Request{GrantType: oauth.GrantTypeTokenExchange, Targets: []string{"https://a.example.com"}}
	b.ReportAllocs()
	for b.Loop() {
		d, oe := Decide(c, s, r, limits, now)
		if oe != nil || len(d.Audience) != 1 {
			b.Fatal(d, oe)
		}
	}
}

// BenchmarkDelegation is the act chain of a client exchanging another
// party's token without an actor token: the client becomes the actor.
func BenchmarkDelegation(b *testing.B) {
	c := client()
	sub := Party{Subject: "alice", ClientID: "web", Audience: []string{"rs08"}}
	b.ReportAllocs()
	for b.Loop() {
		act, oe := Delegation(c, sub, nil, DefaultMaxActDepth)
		if oe != nil || act.Subject != "rs08" {
			b.Fatal(act, oe)
		}
	}
}

// BenchmarkMayExchange is the check of who may present a self-issued
// subject token.
func BenchmarkMayExchange(b *testing.B) {
	c := client()
	sub := Party{Subject: "alice", ClientID: "web", Audience: []string{"rs08"}}
	b.ReportAllocs()
	for b.Loop() {
		if oe := MayExchange(c, sub); oe != nil {
			b.Fatal(oe)
		}
	}
}

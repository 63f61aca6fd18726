package portal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// A coalesced record shows how many refusals it stands for; a single one
// shows no count.
func TestAuditShowsCount(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	pw := s.CreateOperator("alice")
	now := time.Now()
	if err := s.Store.AppendAudit(context.Background(), []store.AuditRecord{
		{Time: now, Action: "token.client_credentials", Decision: store.DecisionRefused, ClientID: "flooded", Error: "invalid_client", Count: 1999},
		{Time: now, Action: "token.client_credentials", Decision: store.DecisionRefused, ClientID: "single", Error: "invalid_client"},
	}); err != nil {
		t.Fatal(err)
	}
	p := s.PortalSignIn("alice", pw)
	if body := string(p.Get("/portal/audit?client=flooded").Body); !strings.Contains(body, "×1999") {
		t.Errorf("the coalesced record's count is not shown")
	}
	if body := string(p.Get("/portal/audit?client=single").Body); strings.Contains(body, "×1") {
		t.Errorf("a single record shows a count")
	}
}

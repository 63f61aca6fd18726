package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/ststest"
)

// TestAuditDateFilters (issue 9, portal item 6): the audit filters take
// ISO dates and times in UTC, as the table shows them (no locale's
// mm/dd/yyyy); "until" includes the period it names; bad input is a
// field error saying what to write.
func TestAuditDateFilters(t *testing.T) {
	s := ststest.Start(t, ststest.Options{})
	p := s.PortalSignIn("alice", s.CreateOperator("alice"))
	at := func(v string) time.Time {
		t.Helper()
		x, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	var recs []store.AuditRecord
	for _, r := range []struct{ detail, time string }{
		{"rec-jan30", "2026-01-30T23:59:59Z"},
		{"rec-jan31-morning", "2026-01-31T08:00:00Z"},
		{"rec-jan31-1345", "2026-01-31T13:45:05Z"},
		{"rec-feb01", "2026-02-01T00:00:00Z"},
	} {
		recs = append(recs, store.AuditRecord{Time: at(r.time), Action: "test.dates", Decision: store.DecisionGranted, Detail: r.detail})
	}
	if err := s.Store.AppendAudit(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		since, until string
		want         []string
	}{
		{"2026-01-31", "2026-01-31", []string{"rec-jan31-morning", "rec-jan31-1345"}},
		{"2026-01-31 13:45", "", []string{"rec-jan31-1345", "rec-feb01"}},
		{"", "2026-01-31 13:45", []string{"rec-jan30", "rec-jan31-morning", "rec-jan31-1345"}},
		{"2026-01-31T13:45:06", "", []string{"rec-feb01"}},
		// As the table writes a time, so that it can be copied from it.
		{"2026-01-31 13:45:05 UTC", "2026-01-31 13:45:05 UTC", []string{"rec-jan31-1345"}},
		{"2026-01-31T09:00:00+01:00", "2026-01-31T08:00:00Z", []string{"rec-jan31-morning"}},
	} {
		r := p.Get("/portal/audit?action=test&since=" + url.QueryEscape(tc.since) + "&until=" + url.QueryEscape(tc.until))
		body := string(r.Body)
		if r.Status != http.StatusOK {
			t.Errorf("since %q until %q: %d", tc.since, tc.until, r.Status)
			continue
		}
		for _, d := range []string{"rec-jan30", "rec-jan31-morning", "rec-jan31-1345", "rec-feb01"} {
			want := false
			for _, w := range tc.want {
				want = want || w == d
			}
			if got := strings.Contains(body, d+"<"); got != want {
				t.Errorf("since %q until %q: %s listed %v, want %v", tc.since, tc.until, d, got, want)
			}
		}
	}
	for _, tc := range []struct{ q, field string }{
		{"since=01/31/2026", "f-since-error"},
		{"until=yesterday", "f-until-error"},
		{"since=2026-02-30", "f-since-error"},
		{"since=2026-02-01&until=2026-01-01", "f-until-error"},
	} {
		r := p.Get("/portal/audit?" + tc.q)
		body := string(r.Body)
		if r.Status != http.StatusBadRequest || !strings.Contains(body, `id="`+tc.field+`"`) || !(strings.Contains(body, "YYYY-MM-DD") || strings.Contains(body, "is before since")) {
			t.Errorf("%s: %d\n%s", tc.q, r.Status, body)
		}
	}
	// The inputs are text fields with the ISO form as placeholder and
	// pattern, not the browser's localized date pickers.
	page := string(p.Get("/portal/audit").Body)
	if strings.Contains(page, `type="datetime-local"`) || strings.Contains(page, `type="date"`) ||
		!strings.Contains(page, `id="f-since" name="since" type="text"`) || !strings.Contains(page, `placeholder="YYYY-MM-DD HH:MM" pattern=`) {
		t.Error("the date filters are not ISO text inputs")
	}
}

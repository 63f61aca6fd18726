package metrics

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/keybridge/sts/oauth"
)

// The window's percentiles are those of what was observed, to a bucket
// (10%), and only of the last few minutes.
func TestWindowQuantiles(t *testing.T) {
	var w window
	now := time.Unix(1_800_000_000, 0)
	// 1,000 requests: 990 of 1 ms to 2 ms, 10 of 100 ms.
	for i := range 990 {
		w.observe(now, time.Millisecond+time.Duration(i)*time.Microsecond)
	}
	for range 10 {
		w.observe(now, 100*time.Millisecond)
	}
	p50, p99, n := w.quantiles(now.Add(30 * time.Second))
	if n != 1000 {
		t.Fatalf("n = %d", n)
	}
	within := func(name string, got, want time.Duration) {
		t.Helper()
		if got < want || float64(got) > float64(want)*1.11 {
			t.Errorf("%s = %v, want %v to %v", name, got, want, time.Duration(float64(want)*1.11))
		}
	}
	within("p50", p50, 1495*time.Microsecond)
	within("p99", p99, 1990*time.Microsecond)
	if _, p100, _ := w.quantiles(now); p100 < 1990*time.Microsecond {
		t.Errorf("p99 %v", p100)
	}
	// Five minutes later the minute is forgotten; a new one starts afresh.
	later := now.Add(windowSlots * slotSeconds * time.Second)
	if _, _, n := w.quantiles(later); n != 0 {
		t.Fatalf("after the window: n = %d", n)
	}
	w.observe(later, 50*time.Millisecond)
	if p50, _, n := w.quantiles(later); n != 1 || p50 < 50*time.Millisecond || p50 > 56*time.Millisecond {
		t.Fatalf("fresh slot: p50 %v n %d", p50, n)
	}
}

// Unknown grant types and error codes map to "other"; known ones to
// themselves.
func TestBoundedLabels(t *testing.T) {
	if g := GrantOf("urn:x:" + string(rune(rand.IntN(1000)))); g != GrantOther {
		t.Errorf("unknown grant: %v", g)
	}
	if g := GrantOf(oauth.GrantTypeTokenExchange); g.String() != "token_exchange" {
		t.Errorf("token exchange: %v", g)
	}
	if e := errorCodes[errorOf("made_up")]; e != "other" {
		t.Errorf("unknown code: %v", e)
	}
	if e := errorCodes[errorOf(oauth.ErrInvalidGrant)]; e != oauth.ErrInvalidGrant {
		t.Errorf("invalid_grant: %v", e)
	}
}

// What one token request costs the instrumentation: five steps and the
// request's count, latency and window; it allocates nothing.
func BenchmarkRequestInstrumentation(b *testing.B) {
	m := New(nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, st := m.StartStep(ctx, StepAuthenticate)
			for s := StepValidateSubject; s <= StepSign; s++ {
				_, st = st.Next(ctx, s)
			}
			st.End(nil)
			_, st = m.StartStep(ctx, StepAudit)
			st.End(nil)
			m.Request(EndpointToken, GrantTokenExchange, http.StatusOK, "", time.Now(), 300*time.Microsecond)
		}
	})
}

func TestInstrumentationAllocatesNothing(t *testing.T) {
	m := New(nil)
	ctx := context.Background()
	m.Request(EndpointToken, GrantTokenExchange, http.StatusBadRequest, oauth.ErrInvalidGrant, time.Now(), time.Millisecond)
	if a := testing.AllocsPerRun(100, func() {
		_, st := m.StartStep(ctx, StepAuthenticate)
		for s := StepValidateSubject; s <= StepSign; s++ {
			_, st = st.Next(ctx, s)
		}
		st.End(nil)
		m.Request(EndpointToken, GrantTokenExchange, http.StatusBadRequest, oauth.ErrInvalidGrant, time.Now(), time.Millisecond)
	}); a != 0 {
		t.Fatalf("%v allocations per request", a)
	}
}

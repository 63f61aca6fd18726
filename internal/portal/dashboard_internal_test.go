package portal

import (
	"strings"
	"testing"
	"time"
)

func TestDashboardFormats(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{{0, 1}, {1, 1}, {2, 2}, {3, 5}, {7, 10}, {10, 10}, {11, 20}, {480, 500}, {501, 1000}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}} {
		if got := fmtInt(tc.in); got != tc.want {
			t.Errorf("fmtInt(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{{4 * time.Second, "4s"}, {90 * time.Minute, "1h 30m"}, {49 * time.Hour, "2d 1h"}, {30 * 24 * time.Hour, "30d"}} {
		if got := fmtDuration(tc.in); got != tc.want {
			t.Errorf("fmtDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{{850 * time.Microsecond, "850 µs"}, {3200 * time.Microsecond, "3.2 ms"}, {41 * time.Millisecond, "41 ms"}, {1500 * time.Millisecond, "1.50 s"}} {
		if got := fmtLatency(tc.in); got != tc.want {
			t.Errorf("fmtLatency(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// stepPath draws runs of equal values as one segment, a single decision
// at least 0.75 units high, and nothing when all are zero.
func TestStepPath(t *testing.T) {
	if p := stepPath([]int64{0, 0, 0}, 0, 0, 1, 100, 50); p != "" {
		t.Errorf("all zero: %q", p)
	}
	p := stepPath([]int64{0, 5, 5, 5, 0, 1}, 1000, 10, 2, 100, 50)
	if want := "M10 100V100H12V99.3H18V100H20V99.3H22V100Z"; p != want {
		t.Errorf("stepPath = %q, want %q", p, want)
	}
	long := make([]int64, 1440)
	if p := stepPath(long, 10, 0, 1, 100, 50); strings.Count(p, "H") > 1 {
		t.Errorf("a flat day is drawn in %d segments", strings.Count(p, "H"))
	}
}

package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Histogram counts latencies in log-spaced buckets: ten a decade from
// 50 µs to 10 s (the R10 preferred numbers 1, 1.25, 1.6, 2, 2.5, 3.2, 4,
// 5, 6.3 and 8), so every bucket is about 25% wider than the one before
// and the shape of a latency distribution over several orders of magnitude
// stays visible, plus one bucket below 50 µs and one from 10 s up.
// Percentiles are exact in Result; the histogram shows the shape.
type Histogram struct {
	Buckets []Bucket `json:"buckets"`
}

// Bucket is one range of a Histogram: latencies d with Lower ≤ d < Upper.
type Bucket struct {
	Lower time.Duration `json:"lower_ns"`
	// Upper is zero for the last bucket, which has no bound.
	Upper time.Duration `json:"upper_ns,omitempty"`
	Count int           `json:"count"`
}

// histogramBounds returns the bucket boundaries, ascending.
func histogramBounds() []time.Duration {
	mantissas := []float64{1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.3, 8}
	var b []time.Duration
	for decade := 10 * time.Microsecond; decade <= 10*time.Second; decade *= 10 {
		for _, m := range mantissas {
			d := time.Duration(math.Round(m * float64(decade)))
			if d >= 50*time.Microsecond && d <= 10*time.Second {
				b = append(b, d)
			}
		}
	}
	return b
}

// NewHistogram returns an empty histogram with its buckets.
func NewHistogram() Histogram {
	bounds := histogramBounds()
	h := Histogram{Buckets: make([]Bucket, len(bounds)+1)}
	for i := range h.Buckets {
		if i > 0 {
			h.Buckets[i].Lower = bounds[i-1]
		}
		if i < len(bounds) {
			h.Buckets[i].Upper = bounds[i]
		}
	}
	return h
}

// Add counts one latency. The zero Histogram gets its buckets on first use.
func (h *Histogram) Add(d time.Duration) {
	if h.Buckets == nil {
		*h = NewHistogram()
	}
	// The bucket is the first whose upper bound exceeds d; the last one
	// has none.
	bounded := h.Buckets[:len(h.Buckets)-1]
	i, found := slices.BinarySearchFunc(bounded, d, func(b Bucket, d time.Duration) int { return cmp.Compare(b.Upper, d) })
	if found {
		i++
	}
	h.Buckets[i].Count++
}

// Total is the number of latencies counted.
func (h Histogram) Total() int {
	n := 0
	for _, b := range h.Buckets {
		n += b.Count
	}
	return n
}

// span returns the indexes of the first and last non-empty buckets, or
// ok false if all are empty.
func (h Histogram) span() (first, last int, ok bool) {
	first, last = -1, -1
	for i, b := range h.Buckets {
		if b.Count > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last, first >= 0
}

// label names a bucket's range, as "1ms–1.25ms", "<50µs" or "≥10s".
func (b Bucket) label() string {
	switch {
	case b.Lower == 0:
		return "<" + b.Upper.String()
	case b.Upper == 0:
		return "≥" + b.Lower.String()
	}
	return b.Lower.String() + "–" + b.Upper.String()
}

// histogramBarWidth is the length in characters of the longest text bar.
const histogramBarWidth = 50

// String draws the histogram as text, one line a bucket from the first
// non-empty one to the last: its range, count, share and a bar of #
// scaled to the largest bucket.
func (h Histogram) String() string {
	first, last, ok := h.span()
	if !ok {
		return "no latencies\n"
	}
	total, peak, width := h.Total(), 0, 0
	for _, b := range h.Buckets[first : last+1] {
		peak = max(peak, b.Count)
		width = max(width, len([]rune(b.label())))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-*s %8s %6s\n", width, "latency", "count", "share")
	for _, b := range h.Buckets[first : last+1] {
		bar := b.Count * histogramBarWidth / peak
		if b.Count > 0 && bar == 0 {
			bar = 1 // a bucket with anything in it is visible
		}
		l := b.label()
		pad := width - len([]rune(l))
		fmt.Fprintf(&sb, "%s%s %8d %5.1f%% %s\n", l, strings.Repeat(" ", pad), b.Count,
			100*float64(b.Count)/float64(total), strings.Repeat("#", bar))
	}
	return sb.String()
}

package bench_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/bench"
)

func TestHistogramBuckets(t *testing.T) {
	h := bench.NewHistogram()
	if n := len(h.Buckets); n != 55 {
		t.Fatalf("%d buckets, want 55: ten a decade from 50µs to 10s and two open-ended", n)
	}
	for i, b := range h.Buckets[1 : len(h.Buckets)-1] {
		if b.Lower != h.Buckets[i].Upper || b.Upper <= b.Lower || float64(b.Upper)/float64(b.Lower) > 1.3 {
			t.Errorf("bucket %d: %+v after %+v, want contiguous and about 25%% wide", i+1, b, h.Buckets[i])
		}
	}
	if first, last := h.Buckets[0], h.Buckets[len(h.Buckets)-1]; first.Lower != 0 || first.Upper != 50*time.Microsecond ||
		last.Lower != 10*time.Second || last.Upper != 0 {
		t.Fatalf("outer buckets %+v, %+v", first, last)
	}
	for _, c := range []struct {
		d            time.Duration
		lower, upper time.Duration
	}{
		{0, 0, 50 * time.Microsecond},
		{49 * time.Microsecond, 0, 50 * time.Microsecond},
		{50 * time.Microsecond, 50 * time.Microsecond, 63 * time.Microsecond},
		{time.Millisecond, time.Millisecond, 1250 * time.Microsecond},
		{1249 * time.Microsecond, time.Millisecond, 1250 * time.Microsecond},
		{3199 * time.Millisecond, 2500 * time.Millisecond, 3200 * time.Millisecond},
		{10 * time.Second, 10 * time.Second, 0},
		{time.Hour, 10 * time.Second, 0},
	} {
		var h bench.Histogram // the zero value works too
		h.Add(c.d)
		for _, b := range h.Buckets {
			if b.Count == 1 && (b.Lower != c.lower || b.Upper != c.upper) {
				t.Errorf("%v counted in [%v, %v), want [%v, %v)", c.d, b.Lower, b.Upper, c.lower, c.upper)
			}
		}
		if h.Total() != 1 {
			t.Errorf("%v: total %d", c.d, h.Total())
		}
	}
}

// sample is a result whose histogram has 100 latencies at 1ms, 50 at 2ms,
// 10 at 8ms and 1 at 40ms.
func sample() bench.Result {
	r := bench.Result{Requests: 161, PerSecond: 80, Elapsed: 2 * time.Second,
		P50: time.Millisecond, P90: 2 * time.Millisecond, P99: 8 * time.Millisecond, Max: 40 * time.Millisecond}
	for _, c := range []struct {
		d time.Duration
		n int
	}{{time.Millisecond, 100}, {2 * time.Millisecond, 50}, {8 * time.Millisecond, 10}, {40 * time.Millisecond, 1}} {
		for range c.n {
			r.Histogram.Add(c.d)
		}
	}
	return r
}

func TestHistogramText(t *testing.T) {
	text := sample().Histogram.String()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	// A header, then the buckets from 1ms–1.25ms to 40ms–50ms: 17 of them.
	if len(lines) != 18 || !strings.HasPrefix(lines[0], "latency") {
		t.Fatalf("%d lines:\n%s", len(lines), text)
	}
	for _, want := range []string{
		"1ms–1.25ms        100  62.1% " + strings.Repeat("#", 50),
		"2ms–2.5ms          50  31.1% " + strings.Repeat("#", 25),
		"8ms–10ms           10   6.2% " + strings.Repeat("#", 5),
		"40ms–50ms           1   0.6% #",
		"1.25ms–1.6ms        0   0.0% \n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no line %q in\n%s", want, text)
		}
	}
	if got := bench.NewHistogram().String(); got != "no latencies\n" {
		t.Errorf("empty histogram: %q", got)
	}
}

func TestHistogramJSON(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Histogram.Total() != 161 || len(back.Histogram.Buckets) != 55 {
		t.Fatalf("histogram after a JSON round trip: %+v", back.Histogram)
	}
	if !bytes.Contains(b, []byte(`{"lower_ns":1000000,"upper_ns":1250000,"count":100}`)) {
		t.Errorf("JSON does not show the 1ms bucket as expected:\n%s", b)
	}
}

// svgNode is an element of the plot, as far as the test reads it.
type svgNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []svgNode  `xml:",any"`
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestPlotSVG(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	var root svgNode
	if err := xml.Unmarshal(buf.Bytes(), &root); err != nil {
		t.Fatalf("the plot is not XML: %v\n%s", err, buf.String())
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v", root.XMLName)
	}
	bars, texts := 0, map[string][]string{}
	var heights []string
	for _, n := range root.Nodes {
		switch n.XMLName.Local {
		case "rect":
			if n.attr("class") == "bar" {
				bars++
				heights = append(heights, n.attr("height"))
			}
		case "text":
			texts[n.attr("class")] = append(texts[n.attr("class")], strings.TrimSpace(n.Text))
		}
	}
	// One bar for each non-empty bucket.
	if bars != 4 {
		t.Errorf("%d bars, want 4 (heights %v)", bars, heights)
	}
	for class, want := range map[string]string{
		"xlabel":     "latency (log scale)",
		"ylabel":     "requests per bucket",
		"xtick":      "1ms,2ms,5ms,10ms,20ms,50ms,100ms", // whole decades around 1ms–50ms
		"percentile": "p50 1ms,p90 2ms,p99 8ms",
	} {
		if got := strings.Join(texts[class], ","); got != want {
			t.Errorf("%s texts %q, want %q", class, got, want)
		}
	}
	if y := texts["ytick"]; len(y) < 3 || y[0] != "0" || y[len(y)-1] != "100" {
		t.Errorf("y ticks %q, want 0 up to 100", y)
	}
	if title := texts["title"]; len(title) != 1 || !strings.Contains(title[0], "161 exchanges") {
		t.Errorf("title %q", title)
	}
	if err := (bench.Result{}).WriteSVG(io.Discard); err == nil {
		t.Error("a plot of no latencies: no error")
	}
}

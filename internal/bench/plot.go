package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// The plot's size and the margins around its axes, in SVG user units
// (pixels when shown at its natural size).
const (
	plotWidth, plotHeight           = 860, 520
	plotLeft, plotRight, plotTop    = 80, 30, 50
	plotBottom                      = 70
	plotInnerWidth, plotInnerHeight = plotWidth - plotLeft - plotRight, plotHeight - plotTop - plotBottom
)

// WriteSVG draws the latency histogram of r as an SVG bar chart: latency
// on a logarithmic x axis (whole decades, ticked at 1, 2 and 5), requests
// per bucket on a linear y axis, and dashed lines at p50, p90 and p99. The
// SVG is written by hand so that the CLI needs no plotting library; it
// shows in any browser and converts to PNG with any SVG tool.
func (r Result) WriteSVG(w io.Writer) error {
	h := r.Histogram
	first, last, ok := h.span()
	if !ok {
		return errors.New("bench: no latencies to plot")
	}
	// The open-ended outer buckets are drawn one bucket-width (×1.25) wide.
	lo, hi := h.Buckets[first].Lower, h.Buckets[last].Upper
	if lo == 0 {
		lo = h.Buckets[first].Upper * 4 / 5
	}
	if hi == 0 {
		hi = h.Buckets[last].Lower * 5 / 4
	}
	decLo := math.Floor(math.Log10(float64(lo)))
	decHi := math.Ceil(math.Log10(float64(hi)))
	x := func(d time.Duration) float64 {
		return plotLeft + plotInnerWidth*(math.Log10(float64(d))-decLo)/(decHi-decLo)
	}
	peak := 0
	for _, b := range h.Buckets {
		peak = max(peak, b.Count)
	}
	step := niceStep(float64(peak) / 5)
	yMax := math.Ceil(float64(peak)/step) * step
	y := func(n float64) float64 { return plotTop + plotInnerHeight*(1-n/yMax) }
	bottom := float64(plotTop + plotInnerHeight)

	var buf bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&buf, format, args...) }
	text := func(s string) string {
		var b bytes.Buffer
		xml.EscapeText(&b, []byte(s)) // writes to a bytes.Buffer cannot fail
		return b.String()
	}
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, plotHeight, plotWidth, plotHeight)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", plotWidth, plotHeight)
	p(`<text class="title" x="%d" y="24" text-anchor="middle" font-size="15">%s</text>`+"\n", plotWidth/2,
		text(fmt.Sprintf("sts bench: %d exchanges, %.0f/s, %d errors; p50 %v, p99 %v", r.Requests, r.PerSecond, r.Errors,
			r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))))

	// Grid and ticks: y first, so that the bars are drawn over the lines.
	for n := 0.0; n <= yMax+step/2; n += step {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>`+"\n", plotLeft, y(n), plotLeft+plotInnerWidth, y(n))
		p(`<text class="ytick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", plotLeft-6, y(n), text(fmt.Sprintf("%.0f", n)))
	}
	for dec := decLo; dec <= decHi; dec++ {
		for _, m := range []float64{1, 2, 5} {
			d := time.Duration(math.Round(m * math.Pow(10, dec)))
			if x(d) > plotLeft+plotInnerWidth+0.5 {
				break
			}
			stroke := "#f0f0f0"
			if m == 1 {
				stroke = "#d0d0d0"
			}
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(d), plotTop, x(d), bottom, stroke)
			p(`<text class="xtick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(d), bottom+18, text(d.String()))
		}
	}

	for _, b := range h.Buckets[first : last+1] {
		if b.Count == 0 {
			continue
		}
		l, u := b.Lower, b.Upper
		if l == 0 {
			l = lo
		}
		if u == 0 {
			u = hi
		}
		p(`<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fb5"><title>%s</title></rect>`+"\n",
			x(l)+0.5, y(float64(b.Count)), max(x(u)-x(l)-1, 0.5), bottom-y(float64(b.Count)), text(fmt.Sprintf("%s: %d", b.label(), b.Count)))
	}

	// Percentile markers, their labels stacked so that close ones stay legible.
	for i, m := range []struct {
		name string
		d    time.Duration
	}{{"p50", r.P50}, {"p90", r.P90}, {"p99", r.P99}} {
		if m.d <= 0 {
			continue
		}
		xm := min(max(x(m.d), plotLeft), plotLeft+plotInnerWidth)
		p(`<line class="percentile" x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#c0392b" stroke-dasharray="5,4"/>`+"\n", xm, plotTop, xm, bottom)
		p(`<text class="percentile" x="%.1f" y="%d" fill="#c0392b" stroke="white" stroke-width="3" paint-order="stroke">%s</text>`+"\n", xm+4, plotTop+14+14*i, text(fmt.Sprintf("%s %v", m.name, m.d.Round(time.Microsecond))))
	}

	// Axes and their labels.
	p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", plotLeft, bottom, plotLeft+plotInnerWidth, bottom)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", plotLeft, plotTop, plotLeft, bottom)
	p(`<text class="xlabel" x="%d" y="%d" text-anchor="middle" font-size="13">latency (log scale)</text>`+"\n", plotLeft+plotInnerWidth/2, plotHeight-20)
	p(`<text class="ylabel" transform="translate(22 %d) rotate(-90)" text-anchor="middle" font-size="13">requests per bucket</text>`+"\n", plotTop+plotInnerHeight/2)
	p("</svg>\n")
	_, err := w.Write(buf.Bytes())
	return err
}

// niceStep rounds a positive step up to 1, 2 or 5 times a power of ten,
// so that axis ticks fall on round numbers.
func niceStep(raw float64) float64 {
	if raw <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

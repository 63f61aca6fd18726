package portal

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keybridge/sts/internal/federation"
	"github.com/keybridge/sts/internal/store"
)

// --- Dashboard (the operators' home page) ---
//
// Charts are inline SVG drawn by the templates from geometry computed
// here: no script, nothing fetched, and within the portal's CSP (SVG
// presentation attributes are not inline styles; colours come from
// dashboard.css through classes).

// LatencySource reports the latency of the token endpoint: the 50th and
// 99th percentiles and how many requests they are of (internal/metrics
// implements it). The dashboard shows "not measured" without one.
type LatencySource interface {
	TokenLatency() (p50, p99 time.Duration, n uint64)
}

// IssuerKeysFunc reports what the server holds of a trusted issuer's keys
// (federation.Fetcher.KeyStatus).
type IssuerKeysFunc func(issuer string) federation.KeyStatus

// Dashboard settings.
const (
	// dashWindow is the period the charts cover, in dashBucket buckets.
	dashWindow = 24 * time.Hour
	dashBucket = time.Minute
	// statsTTL is how long the audit aggregates are reused: however often
	// operators load the page, the store counts at most once per statsTTL
	// (and per instance). statsTimeout bounds one count; past it the page
	// says so and shows the rest.
	statsTTL     = time.Minute
	statsTimeout = 10 * time.Second
	// statsErrorTTL is how long a failed count is remembered, so that a
	// table too large to count in statsTimeout is not counted on every
	// load.
	statsErrorTTL  = 15 * time.Second
	dashTopClients = 10
	dashTopReasons = 8
)

// tokenActions are the audit actions of the token endpoint's decisions
// ("token." and the grant, as the endpoint names them; "token" alone
// when the request named no grant; "token.device" a radio device's own
// exchange, "token.batch" each item of a domain proxy's batch).
var tokenActions = []string{"token", "token.exchange", "token.client_credentials", "token.refresh_token", "token.jwt_bearer", "token.device", "token.batch", "token.unsupported"}

// statsCache holds the last audit aggregates; one count runs at a time
// and concurrent page loads share it.
type statsCache struct {
	mu   sync.Mutex
	at   time.Time // when sum or err was computed
	sum  *store.AuditSummary
	err  error
	call chan struct{} // closed when the count in flight ends
}

// auditStats returns the aggregates of the window ending at now, counted
// at most statsTTL ago.
func (p *Portal) auditStats(ctx context.Context, now time.Time) (*store.AuditSummary, time.Time, error) {
	c := &p.stats
	c.mu.Lock()
	fresh := (c.sum != nil && now.Sub(c.at) < statsTTL) || (c.err != nil && now.Sub(c.at) < statsErrorTTL)
	if fresh {
		defer c.mu.Unlock()
		return c.sum, c.at, c.err
	}
	call := c.call
	if call == nil {
		call = make(chan struct{})
		c.call = call
		// Detached from this request: a page load that gives up does not
		// spoil the count for the others; statsTimeout bounds it.
		go p.countStats(context.WithoutCancel(ctx), now, call)
	}
	c.mu.Unlock()
	select {
	case <-call:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sum, c.at, c.err
}

// countTimeout is how long one count may take.
func (p *Portal) countTimeout() time.Duration {
	if p.statsTimeout > 0 {
		return p.statsTimeout
	}
	return statsTimeout
}

func (p *Portal) countStats(ctx context.Context, now time.Time, call chan struct{}) {
	ctx, cancel := context.WithTimeout(ctx, p.countTimeout())
	defer cancel()
	end := now.Truncate(dashBucket).Add(dashBucket)
	sum, err := p.o.Store.AuditStats(ctx, store.AuditStatsQuery{
		Since: end.Add(-dashWindow), Until: end, Bucket: dashBucket, Actions: tokenActions,
		TopReasons: dashTopReasons, TopClients: dashTopClients,
	})
	if err != nil {
		p.o.Logger.Error("portal: dashboard audit stats", "err", err)
	}
	c := &p.stats
	c.mu.Lock()
	c.sum, c.err, c.at, c.call = sum, err, now, nil
	c.mu.Unlock()
	close(call)
}

// Chart geometry, in the SVG's user units (its viewBox; the page scales
// it to its width).
const (
	tlWidth  = 960
	tlLeft   = 56 // room for the y labels
	tlRight  = 12
	tlTop    = 14
	tlBandG  = 150 // height of the granted band
	tlGap    = 40  // between the bands: the x labels
	tlBandR  = 70  // height of the refused band
	tlHeight = tlTop + tlBandG + tlGap + tlBandR + 28
)

// timeline is the exchanges-per-minute chart.
type timeline struct {
	Width, Height       int
	Left, Right         int // plot's x range
	GTop, GBase         int // granted band
	RTop, RBase         int // refused band
	GranPath, RefPath   string
	GMax, RMax          string // y labels at the top of each band
	Ticks               []tick
	Granted, Refused    string // totals
	Peak, PeakAt        string
	RefusedShare        string
	Empty               bool
	Since, Until, Label string
}

type tick struct {
	X     string
	Label string
}

// buildTimeline lays out the buckets of [end-dashWindow, end).
func buildTimeline(bs []store.AuditBucket, end time.Time) *timeline {
	n := int(dashWindow / dashBucket)
	start := end.Add(-dashWindow)
	granted, refused := make([]int64, n), make([]int64, n)
	var tg, tr, peak int64
	peakAt := -1
	for _, b := range bs {
		i := int(b.Start.Sub(start) / dashBucket)
		if i < 0 || i >= n {
			continue
		}
		granted[i], refused[i] = b.Granted, b.Refused
		tg += b.Granted
		tr += b.Refused
		if b.Granted+b.Refused > peak {
			peak, peakAt = b.Granted+b.Refused, i
		}
	}
	t := &timeline{
		Width: tlWidth, Height: tlHeight, Left: tlLeft, Right: tlWidth - tlRight,
		GTop: tlTop, GBase: tlTop + tlBandG, RTop: tlTop + tlBandG + tlGap, RBase: tlTop + tlBandG + tlGap + tlBandR,
		Granted: fmtInt(tg), Refused: fmtInt(tr), Empty: tg+tr == 0,
		Since: start.UTC().Format("2006-01-02 15:04"), Until: end.UTC().Format("2006-01-02 15:04 UTC"),
	}
	if tg+tr > 0 {
		t.RefusedShare = fmt.Sprintf("%.1f%%", 100*float64(tr)/float64(tg+tr))
	}
	if peakAt >= 0 {
		t.Peak, t.PeakAt = fmtInt(peak), start.Add(time.Duration(peakAt)*dashBucket).UTC().Format("15:04 UTC")
	}
	gmax, rmax := niceCeil(slices.Max(granted)), niceCeil(slices.Max(refused))
	t.GMax, t.RMax = fmtInt(gmax), fmtInt(rmax)
	xw := float64(t.Right-t.Left) / float64(n)
	t.GranPath = stepPath(granted, gmax, float64(t.Left), xw, float64(t.GBase), tlBandG)
	t.RefPath = stepPath(refused, rmax, float64(t.Left), xw, float64(t.RBase), tlBandR)
	// A tick every three hours, on the hour.
	first := start.Truncate(3 * time.Hour)
	if first.Before(start) {
		first = first.Add(3 * time.Hour)
	}
	for at := first; at.Before(end); at = at.Add(3 * time.Hour) {
		x := float64(t.Left) + float64(at.Sub(start)/dashBucket)*xw
		t.Ticks = append(t.Ticks, tick{X: fmtF(x), Label: at.UTC().Format("15:04")})
	}
	return t
}

// stepPath draws vs as steps filled down to base: bucket i spans
// [left+i·xw, left+(i+1)·xw), and a value of max reaches base-height.
// Runs of equal values are one segment, so a quiet day draws small.
func stepPath(vs []int64, max int64, left, xw, base float64, height int) string {
	if max <= 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "M%s %sV%s", fmtF(left), fmtF(base), fmtF(base))
	y := base
	for i, v := range vs {
		ny := base - float64(v)*float64(height)/float64(max)
		if v > 0 && base-ny < 0.75 {
			ny = base - 0.75 // one decision is still seen
		}
		if ny != y {
			fmt.Fprintf(&b, "H%sV%s", fmtF(left+float64(i)*xw), fmtF(ny))
			y = ny
		}
	}
	fmt.Fprintf(&b, "H%sV%sZ", fmtF(left+float64(len(vs))*xw), fmtF(base))
	return b.String()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1),
// so that the y axis reads well.
func niceCeil(v int64) int64 {
	if v <= 1 {
		return 1
	}
	p := int64(math.Pow(10, math.Floor(math.Log10(float64(v)))))
	for _, m := range []int64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// bar is one row of a horizontal bar chart.
type bar struct {
	Label            string
	Href             string
	Name             string // the client's name, when known
	Unknown          bool   // no such client: a made-up id, or deleted
	Granted, Refused string
	GW, RW           string // widths of the granted and refused parts
	RX               string // where the refused part starts
}

const barWidth = 300 // of the SVG of one bar

func buildBars(cs []store.AuditCount) []bar {
	var max int64
	for _, c := range cs {
		max = cmpMax(max, c.Granted+c.Refused)
	}
	out := make([]bar, 0, len(cs))
	for _, c := range cs {
		b := bar{Label: c.Key, Granted: fmtInt(c.Granted), Refused: fmtInt(c.Refused)}
		if max > 0 {
			gw := float64(c.Granted) * barWidth / float64(max)
			rw := float64(c.Refused) * barWidth / float64(max)
			b.GW, b.RW, b.RX = fmtF(gw), fmtF(rw), fmtF(gw)
		}
		out = append(out, b)
	}
	return out
}

func cmpMax(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// keyTimeline is the signing keys' lifetimes chart.
type keyTimeline struct {
	Width, Height int
	Left, Right   int
	Rows          []keyRow
	NowX          string
	From, To      string
	NextRotation  string
}

type keyRow struct {
	*store.SigningKey
	Y, TextY string
	Segs     []keySeg
	// Age says how long the key has been in its state.
	Age string
}

type keySeg struct {
	Class, X, W string
	Title       string
}

const (
	ktWidth  = 960
	ktLeft   = 210
	ktRight  = 16
	ktRow    = 30
	ktTop    = 24
	ktBottom = 14
)

// buildKeyTimeline lays out each key's life: next (published, not yet
// signing), current (signing), retired (published until it expires), on
// one time axis with now marked. period is the rotation period (zero:
// none scheduled).
func buildKeyTimeline(ks []*store.SigningKey, now time.Time, period time.Duration) *keyTimeline {
	t := &keyTimeline{Width: ktWidth, Left: ktLeft, Right: ktWidth - ktRight}
	if len(ks) == 0 {
		return t
	}
	from, to := now, now
	var rotation time.Time
	for _, k := range ks {
		if k.CreatedAt.Before(from) {
			from = k.CreatedAt
		}
		if k.ExpiresAt.After(to) {
			to = k.ExpiresAt
		}
		if k.State == store.KeyCurrent && period > 0 {
			rotation = k.ActivatedAt.Add(period)
			if rotation.After(to) {
				to = rotation
			}
		}
	}
	if !rotation.IsZero() {
		t.NextRotation = rotation.UTC().Format(timeLayout)
	}
	span := to.Sub(from)
	if span < time.Hour {
		span = time.Hour
	}
	to = from.Add(span + span/20) // room after the last end
	x := func(at time.Time) float64 {
		return float64(t.Left) + float64(at.Sub(from))*float64(t.Right-t.Left)/float64(to.Sub(from))
	}
	seg := func(class string, a, b time.Time, title string) keySeg {
		xa, xb := x(a), x(b)
		if xb-xa < 2 {
			xb = xa + 2
		}
		return keySeg{Class: class, X: fmtF(xa), W: fmtF(xb - xa), Title: title}
	}
	for i, k := range ks {
		r := keyRow{SigningKey: k, Y: strconv.Itoa(ktTop + i*ktRow), TextY: strconv.Itoa(ktTop + i*ktRow + 15)}
		switch k.State {
		case store.KeyNext:
			r.Segs = append(r.Segs, seg("k-next", k.CreatedAt, now, "published since "+k.CreatedAt.UTC().Format(timeLayout)+", not signing yet"))
			r.Age = "published " + fmtDuration(now.Sub(k.CreatedAt)) + " ago"
		case store.KeyCurrent:
			r.Segs = append(r.Segs, seg("k-next", k.CreatedAt, k.ActivatedAt, "published before it signed"),
				seg("k-current", k.ActivatedAt, now, "signing since "+k.ActivatedAt.UTC().Format(timeLayout)))
			if !rotation.IsZero() && rotation.After(now) {
				r.Segs = append(r.Segs, seg("k-planned", now, rotation, "signs until the scheduled rotation at "+rotation.UTC().Format(timeLayout)))
			}
			r.Age = "signing for " + fmtDuration(now.Sub(k.ActivatedAt))
		case store.KeyRetired:
			r.Segs = append(r.Segs, seg("k-next", k.CreatedAt, k.ActivatedAt, "published before it signed"),
				seg("k-current", k.ActivatedAt, k.RetiredAt, "signed from "+k.ActivatedAt.UTC().Format(timeLayout)+" to "+k.RetiredAt.UTC().Format(timeLayout)),
				seg("k-retired", k.RetiredAt, k.ExpiresAt, "published until "+k.ExpiresAt.UTC().Format(timeLayout)+" to verify the tokens it signed"))
			r.Age = "unpublished in " + fmtDuration(k.ExpiresAt.Sub(now))
		}
		t.Rows = append(t.Rows, r)
	}
	t.Height = ktTop + len(ks)*ktRow + ktBottom
	t.NowX = fmtF(x(now))
	t.From, t.To = from.UTC().Format("2006-01-02 15:04"), to.UTC().Format("2006-01-02 15:04")
	return t
}

// issuerHealth is one trusted issuer on the dashboard.
type issuerHealth struct {
	*store.TrustedIssuer
	// State is a badge class: active (keys held), pending (not fetched
	// yet or being fetched), refused (stale: refreshes fail), disabled.
	State, Keys string
}

func (p *Portal) issuerHealth(ctx context.Context) ([]issuerHealth, error) {
	if p.o.Issuers == nil {
		return nil, nil
	}
	tis, err := p.o.Issuers.List(ctx)
	if err != nil {
		return nil, err
	}
	now := p.o.Now()
	out := make([]issuerHealth, 0, len(tis))
	for _, ti := range tis {
		h := issuerHealth{TrustedIssuer: ti}
		var ks federation.KeyStatus
		if p.o.IssuerKeys != nil {
			ks = p.o.IssuerKeys(ti.Issuer)
		}
		switch {
		case !ti.Enabled:
			h.State, h.Keys = "disabled", "disabled: its tokens are refused"
		case p.o.IssuerKeys == nil:
			h.State, h.Keys = "pending", "not reported by this server"
		case ks.Stale:
			h.State, h.Keys = "refused", fmt.Sprintf("refresh failing: the last good %s are served (due since %s)", keysN(ks.Keys), ks.Expires.UTC().Format(timeLayout))
		case ks.Cached && ks.Source == federation.KeySourceStatic:
			h.State, h.Keys = "active", keysN(ks.Keys)+", configured"
		case ks.Cached && now.Before(ks.Expires):
			h.State, h.Keys = "active", keysN(ks.Keys)+", fetched, next fetch in "+fmtDuration(ks.Expires.Sub(now))
		case ks.Cached:
			h.State, h.Keys = "active", keysN(ks.Keys)+", fetched again on next use"
		case ks.Fetching:
			h.State, h.Keys = "pending", "being fetched"
		case ti.IntrospectionEndpoint != "" && ti.JWKSURI == "" && len(ti.JWKS) == 0:
			h.State, h.Keys = "pending", "none held: tokens that are not JWTs are introspected; keys are fetched on first use"
		default:
			h.State, h.Keys = "pending", "none held: fetched when a token of this issuer is first presented (or the last fetch failed: see the log)"
		}
		out = append(out, h)
	}
	return out, nil
}

// dashData is what the dashboard template receives.
type dashData struct {
	Timeline    *timeline
	StatsError  string
	CountedAt   string
	Reasons     []bar
	Clients     []bar
	Latency     *latencyView
	Keys        *keyTimeline
	Issuers     []issuerHealth
	HasIssuers  bool
	IssuersNote bool // the federation code keeps no fetch history
}

type latencyView struct {
	P50, P99, N string
}

func (p *Portal) dashboard(w http.ResponseWriter, r *http.Request, u *user) error {
	if !u.IsOperator() {
		http.Redirect(w, r, Path+"/clients", http.StatusSeeOther)
		return nil
	}
	ctx := r.Context()
	now := p.o.Now()
	d := &dashData{HasIssuers: p.o.Issuers != nil}
	sum, at, err := p.auditStats(ctx, now)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		d.StatsError = fmt.Sprintf("Counting the audit records of the last %s took longer than %s: there are too many to chart at once (docs/operations.md, Dashboard).",
			fmtDuration(dashWindow), p.countTimeout())
	case err != nil:
		d.StatsError = "The audit records could not be counted; the error is logged."
	default:
		end := at.Truncate(dashBucket).Add(dashBucket)
		d.Timeline = buildTimeline(sum.Buckets, end)
		d.CountedAt = at.UTC().Format(timeLayout)
		d.Reasons = buildBars(sum.Reasons)
		d.Clients = buildBars(sum.Clients)
		for i := range d.Clients {
			b := &d.Clients[i]
			b.Href = clientPath(b.Label)
			if b.Label == "" {
				b.Unknown, b.Href = true, ""
				continue
			}
			c, err := p.o.Store.GetClient(ctx, b.Label)
			switch {
			case errors.Is(err, store.ErrNotFound):
				b.Unknown, b.Href = true, ""
			case err != nil:
				return err
			default:
				b.Name = c.Name
			}
		}
	}
	if p.o.Latency != nil {
		p50, p99, n := p.o.Latency.TokenLatency()
		if n > 0 {
			d.Latency = &latencyView{P50: fmtLatency(p50), P99: fmtLatency(p99), N: fmtInt(int64(n))}
		}
	}
	ks, err := p.o.Store.ListKeys(ctx, now)
	if err != nil {
		return err
	}
	order := map[store.KeyState]int{store.KeyNext: 0, store.KeyCurrent: 1, store.KeyRetired: 2}
	slices.SortStableFunc(ks, func(a, b *store.SigningKey) int { return order[a.State] - order[b.State] })
	d.Keys = buildKeyTimeline(ks, now, p.o.KeyRotation)
	if d.Issuers, err = p.issuerHealth(ctx); err != nil {
		return err
	}
	return p.ok(w, r, "dashboard", &view{Title: "Dashboard", Nav: "dashboard", User: u, Data: d})
}

// fmtInt writes n with thin groups of three digits (12,345).
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtF writes a coordinate to a tenth of a unit.
func fmtF(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// fmtDuration writes d in its two largest units ("3d 4h", "2h 5m",
// "40s").
func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	h, d := d/time.Hour, d%time.Hour
	m, d := d/time.Minute, d%time.Minute
	s := d / time.Second
	switch {
	case days > 0 && h > 0:
		return fmt.Sprintf("%dd %dh", days, h)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh %dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", s)
}

// fmtLatency writes a latency to three significant digits at most.
func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s"
	case d >= 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64) + " ms"
	case d >= time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 0, 64) + " µs"
}

// keysN writes "1 key", "3 keys".
func keysN(n int) string {
	if n == 1 {
		return "1 key"
	}
	return strconv.Itoa(n) + " keys"
}

package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/oauthhttp"
	"github.com/keybridge/sts/internal/policy"
	"github.com/keybridge/sts/internal/ratelimit"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/tracing"
	"github.com/keybridge/sts/oauth"
)

// A domain proxy obtains tokens for the devices it speaks for, many at a
// time: POST /token/batch (this server's extension of RFC 8693), over
// mutual TLS with the proxy's certificate (CBRS role operator), a JSON
// array of BatchItem; the answer is an array of as many results, in the
// same order: a token response, or an RFC 8693 error object. Every token
// is the device's (sub), names the proxy as its actor (act.sub) and is
// bound to the proxy's certificate, the presenter.

// Limits of a batch.
const (
	// DefaultMaxBatch is the items of a batch when the proxy's profile
	// sets none; MaxBatch is the most any profile allows (as a SAS
	// request's array).
	DefaultMaxBatch = 100
	MaxBatch        = 512
	// MaxBatchBody bounds the request body: MaxBatch items of a long
	// audience and scope fit.
	MaxBatchBody = 256 << 10
	// MaxFCCID and MaxSerial bound an FCC ID and a serial number, in
	// bytes, as a device's certificate may carry them.
	MaxFCCID  = devices.MaxFCCIDLen
	MaxSerial = devices.MaxSerialLen
	// DefaultBatchesPerMinute is each proxy's budget of batches.
	DefaultBatchesPerMinute = 60
)

// BatchItem is one device of a batch request.
type BatchItem struct {
	FCCID  string `json:"fccId"`
	Serial string `json:"cbsdSerialNumber"`
	// Audience and Scope (space-separated), when set, narrow the token
	// within the profile's.
	Audience string `json:"audience,omitempty"`
	Scope    string `json:"scope,omitempty"`
}

func newBatchLimit(perMinute int, now func() time.Time) *ratelimit.Limiter {
	if perMinute <= 0 {
		perMinute = DefaultBatchesPerMinute
	}
	return ratelimit.New(perMinute, 0, now)
}

// maxBatch is the profile's cap on a batch.
func maxBatch(p *store.DeviceProfile) int {
	switch {
	case p.MaxBatch <= 0:
		return DefaultMaxBatch
	case p.MaxBatch > MaxBatch:
		return MaxBatch
	}
	return p.MaxBatch
}

// ServeBatch is POST /token/batch.
func (e *Endpoint) ServeBatch(w http.ResponseWriter, r *http.Request) {
	ev := store.AuditRecord{Action: "token.batch", RequestID: r.Header.Get("X-Request-Id"), Remote: r.RemoteAddr, TraceID: tracing.TraceID(r.Context())}
	var seen deviceSeen
	results, recs, err := e.batch(w, r, &ev, &seen)
	if err != nil {
		err = withCert(err, seen.leaf, seen.profile)
		if oauth.AsError(err).Code != oauth.ErrTemporarilyUnavail {
			// A refusal counts against the source's failure budget; a
			// proxy's own rate limit does not.
			err, _ = e.auth.Failed(w, r, "", err)
		}
		oe := oauth.AsError(err)
		ev.Time = e.now()
		ev.Decision, ev.Error, ev.Detail = store.DecisionRefused, string(oe.Code), oe.Error()
		if aerr := e.audit.Record(r.Context(), ev); aerr != nil && r.Context().Err() == nil {
			e.log.Error("audit", "err", aerr)
		}
		oauthhttp.WriteError(w, e.log, err)
		return
	}
	// Nothing is answered before its audit records are committed; they
	// are handed over together, so the writer commits them in one batch.
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() { errs[i] = e.audit.Record(r.Context(), recs[i]) })
	}
	wg.Wait()
	if aerr := errors.Join(errs...); aerr != nil {
		if r.Context().Err() != nil {
			return
		}
		oauthhttp.WriteError(w, e.log, oauth.NewError(oauth.ErrServerError, "internal error").WithCause(aerr))
		return
	}
	oauthhttp.WriteJSON(w, http.StatusOK, results)
}

// batch authenticates the proxy, reads the batch and issues its tokens;
// it returns the results in order and their audit records, or the
// refusal of the whole request.
func (e *Endpoint) batch(w http.ResponseWriter, r *http.Request, ev *store.AuditRecord, seen *deviceSeen) ([]any, []store.AuditRecord, error) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, nil, oauth.NewError(oauth.ErrInvalidRequest, "the method must be POST").WithStatus(http.StatusMethodNotAllowed)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, oauth.NewError(oauth.ErrInvalidRequest, "the body must be application/json: an array of {fccId, cbsdSerialNumber, audience?, scope?}")
	}
	if e.devices == nil {
		return nil, nil, oauth.NewError(oauth.ErrInvalidRequest, "this server has no device trust")
	}
	chain, err := e.certs.Chain(r)
	if err != nil {
		return nil, nil, oauth.NewError(oauth.ErrInvalidRequest, "the forwarded client certificate cannot be read").WithCause(err)
	}
	if len(chain) == 0 {
		return nil, nil, oauth.NewError(oauth.ErrInvalidClient, "a domain proxy authenticates with its certificate: send the request over mutual TLS")
	}
	seen.leaf = chain[0]
	trust, err := e.devices.Trust(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := e.now()
	// One verification for the whole batch.
	proxy, prof, err := trust.Verify(ctx, chain, devicecert.RoleOperator, now)
	if err != nil {
		return nil, nil, refused(oauth.ErrInvalidClient, "the domain proxy certificate", err)
	}
	seen.profile = proxy.Profile
	ev.Actor = proxy.Subject
	detail := fmt.Sprintf("proxy %s profile=%s", certDetail(proxy.Leaf), proxy.Profile)
	// Per proxy: one proxy's flood spends its own budget only.
	if ok, wait := e.batchLimit.Allow(proxy.Subject); !ok {
		w.Header().Set("Retry-After", strconv.FormatInt(max(int64((wait+time.Second-1)/time.Second), 1), 10))
		return nil, nil, oauth.NewError(oauth.ErrTemporarilyUnavail, "too many batches from this domain proxy; retry later").
			WithStatus(http.StatusTooManyRequests)
	}
	items, err := readBatch(w, r, maxBatch(prof.Spec))
	if err != nil {
		return nil, nil, err
	}

	// Each item's own check; duplicates: the first is served, the
	// others refused.
	results := make([]any, len(items))
	refs := make([]store.DeviceRef, 0, len(items))
	at := make([]int, 0, len(items)) // refs[k] is items[at[k]]
	first := make(map[store.DeviceRef]int, len(items))
	for i, it := range items {
		if it.err != nil {
			results[i] = it.err
			continue
		}
		ref := store.DeviceRef{FCCID: it.FCCID, Serial: it.Serial}
		if j, dup := first[ref]; dup {
			results[i] = oauth.NewError(oauth.ErrInvalidRequest, "entry %d names the same device as entry %d", i, j)
			continue
		}
		first[ref] = i
		refs = append(refs, ref)
		at = append(at, i)
	}
	// One delegation query for the whole batch.
	var ok []bool
	if len(refs) > 0 {
		if ok, err = e.devices.Delegated(ctx, proxy.Subject, refs); err != nil {
			return nil, nil, err
		}
		if len(ok) != len(refs) {
			return nil, nil, fmt.Errorf("delegations: %d answers for %d devices", len(ok), len(refs))
		}
	}
	act := &oauth.Actor{Subject: proxy.Subject}
	actor := deviceMap(proxy)
	recs := make([]store.AuditRecord, len(items))
	grants := make([]int, 0, len(refs)) // the items to sign
	gs := make([]deviceGrant, len(items))
	for k, ref := range refs {
		i := at[k]
		if !ok[k] {
			results[i] = oauth.NewError(oauth.ErrUnauthorizedClient, "this domain proxy may not obtain tokens for device %s (no delegation)", devicecert.Escape(ref.FCCID)+":"+devicecert.Escape(ref.Serial))
			continue
		}
		it := items[i]
		sub := "cbsd:" + devicecert.Escape(ref.FCCID) + ":" + devicecert.Escape(ref.Serial)
		gs[i] = deviceGrant{
			profile: prof, subject: sub, act: act, actor: actor,
			device: map[string]any{"fcc_id": ref.FCCID, "serial": ref.Serial, "role": string(devicecert.RoleCBSD), "profile": proxy.Profile, "subject": sub},
			x5t:    proxy.Thumbprint, notAfter: proxy.NotAfter,
			scope: it.scope,
		}
		if it.Audience != "" {
			gs[i].audiences = []string{it.Audience}
		}
		grants = append(grants, i)
	}
	// Signing is most of a batch's cost: the items are signed on every
	// core.
	errs := make([]error, len(items))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(grants)) {
		wg.Go(func() {
			for k := int(next.Add(1)) - 1; k < len(grants); k = int(next.Add(1)) - 1 {
				i := grants[k]
				issued, err := e.deviceToken(gs[i], now)
				if err != nil {
					errs[i] = err
					continue
				}
				results[i] = issued.resp
				recs[i] = store.AuditRecord{Decision: store.DecisionGranted, Subject: gs[i].subject, Audience: issued.aud, JTI: issued.jti}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		if _, isOAuth := err.(*oauth.Error); !isOAuth {
			return nil, nil, err
		}
		results[i] = err
	}
	// Every item is audited: granted or refused, with its position.
	for i := range items {
		rec := recs[i]
		if oe, isErr := results[i].(*oauth.Error); isErr {
			rec = store.AuditRecord{Decision: store.DecisionRefused, Error: string(oe.Code), Subject: items[i].subject()}
			rec.Detail = fmt.Sprintf("item %d: %s; %s", i, oe.Error(), detail)
		} else {
			rec.Detail = fmt.Sprintf("item %d; %s", i, detail)
		}
		rec.Time, rec.Action, rec.Actor = now, "token.batch", proxy.Subject
		rec.RequestID, rec.Remote = ev.RequestID, ev.Remote
		recs[i] = rec
	}
	return results, recs, nil
}

// batchItem is a read item: its fields, or why it is refused.
type batchItem struct {
	BatchItem
	scope []string
	err   *oauth.Error
}

// subject is the device an item names, for its audit record ("" when it
// names none that can be read).
func (it *batchItem) subject() string {
	if it.FCCID == "" || it.Serial == "" {
		return ""
	}
	return "cbsd:" + devicecert.Escape(it.FCCID) + ":" + devicecert.Escape(it.Serial)
}

// readBatch reads a batch of at most limit items. A body that is not a
// JSON array, or too long, refuses the request; a bad item only itself.
func readBatch(w http.ResponseWriter, r *http.Request, limit int) ([]batchItem, error) {
	if r.ContentLength > MaxBatchBody {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the request body is too large").WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBatchBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, oauth.NewError(oauth.ErrInvalidRequest, "the request body is too large").WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "cannot read the request body").WithCause(err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the body must be a JSON array of {fccId, cbsdSerialNumber, audience?, scope?}")
	}
	switch {
	case len(raw) == 0:
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the batch is empty")
	case len(raw) > limit:
		return nil, oauth.NewError(oauth.ErrInvalidRequest, "the batch holds %d devices; at most %d", len(raw), limit)
	}
	items := make([]batchItem, len(raw))
	for i, m := range raw {
		items[i] = readItem(m)
	}
	return items, nil
}

func readItem(m json.RawMessage) batchItem {
	var it batchItem
	if !utf8.Valid(m) {
		// encoding/json would read the bytes as U+FFFD: another name.
		it.err = oauth.NewError(oauth.ErrInvalidRequest, "an entry is not UTF-8")
		return it
	}
	dec := json.NewDecoder(bytes.NewReader(m))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it.BatchItem); err != nil {
		it.BatchItem = BatchItem{}
		it.err = oauth.NewError(oauth.ErrInvalidRequest, "an entry must be an object of fccId, cbsdSerialNumber, audience and scope strings")
		return it
	}
	// As a certificate may name a device (devicecert.CheckIdentifier), so
	// that every device with a certificate can be in a batch.
	for _, f := range []struct{ name, v string }{{"fccId", it.FCCID}, {"cbsdSerialNumber", it.Serial}} {
		if err := devicecert.CheckIdentifier(f.v); err != nil {
			it.err = oauth.NewError(oauth.ErrInvalidRequest, "%s %v", f.name, err)
			return it
		}
	}
	if it.Audience != "" && !policy.ValidTarget(it.Audience) {
		it.err = oauth.NewError(oauth.ErrInvalidTarget, "audience must be an absolute URI without a fragment")
		return it
	}
	if it.Scope != "" {
		it.scope = strings.Fields(it.Scope)
		for _, s := range it.scope {
			if !oauth.ValidScopeToken(s) {
				it.err = oauth.NewError(oauth.ErrInvalidScope, "scope contains an invalid character")
				return it
			}
		}
	}
	return it
}

// Package devices manages device trust profiles and domain proxies'
// delegations (issue 14): the operator's commands, the configuration
// file's profiles (read-only elsewhere), the portal, and the compiled
// trust the token endpoint verifies device certificates with.
package devices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/store"
)

// Service manages profiles and delegations and keeps the compiled trust
// current (recompiled after any change, by this process or, through the
// change feed, another). It is safe for concurrent use.
type Service struct {
	Store store.Devices
	// Audit, if not nil, records every change; otherwise the store does,
	// if it implements store.Audit (the CLI's).
	Audit *audit.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger reports profiles that no longer compile; nil discards.
	Logger *slog.Logger
	// MaxAge, if not zero, replaces MaxTrustAge.
	MaxAge time.Duration

	mu    sync.Mutex // serialises Reload
	trust trustCache
	// reloading is set while Trust's background reload runs.
	reloading atomic.Bool
}

// MaxTrustAge is how old the compiled trust may get before Trust rereads
// the profiles in the background: a fallback for an instance whose owner
// neither calls Reload on store.ChangeDevice nor runs Run.
const MaxTrustAge = 5 * time.Second

// trustCache is the compiled trust and what it was compiled from.
type trustCache struct {
	sync.RWMutex
	loaded bool
	stale  bool
	t      *devicecert.Trust
	// checked is when the profiles were last read.
	checked time.Time
	// versions is each enabled profile's name and UpdatedAt, sorted, so
	// that a periodic reload that finds nothing changed compiles nothing.
	versions []string
	// errs are the enabled profiles that failed to compile, by name.
	errs map[string]error
}

// ErrReadOnly is wrapped by the errors of changes to a profile declared
// in the configuration file.
var ErrReadOnly = errors.New("declared in the configuration file")

var errChanged = errors.New("changed meanwhile")

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func readOnly(name string) error {
	return fmt.Errorf("device profile %q is %w; change it there", name, ErrReadOnly)
}

// record audits a change made by "by" ("cli", "operator:alice",
// "config"): which device certificates this server trusts, and which
// devices a proxy speaks for, are security decisions.
func (s *Service) record(ctx context.Context, by, action, account, detail string) error {
	rec := store.AuditRecord{
		Time: s.now(), Action: action, Decision: store.DecisionGranted, Subject: by,
		AccountID: account, Detail: detail,
	}
	if s.Audit != nil {
		return s.Audit.Record(ctx, rec)
	}
	if a, ok := s.Store.(store.Audit); ok {
		return a.AppendAudit(ctx, []store.AuditRecord{rec})
	}
	return nil
}

func profileDetail(p *store.DeviceProfile, extra string) string {
	d := fmt.Sprintf("device profile %s (%s)", p.Name, p.Kind)
	if extra != "" {
		d += "; " + extra
	}
	return d
}

// Add checks spec and stores it as a new, enabled profile made by "by"
// (audited as device.profile.add). A name in use is store.ErrConflict.
func (s *Service) Add(ctx context.Context, by string, spec Spec) (*store.DeviceProfile, error) {
	p, _, err := spec.Build(s.now())
	if err != nil {
		return nil, err
	}
	if err := s.Store.CreateDeviceProfile(ctx, p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("a device profile named %q already exists: %w", p.Name, err)
		}
		return nil, err
	}
	s.changed(ctx)
	return p, s.record(ctx, by, "device.profile.add", "", profileDetail(p, ""))
}

// Update changes a profile managed in the store: edit (called outside the
// store's transaction) receives its settings as a Spec and changes what
// it means to; the result is checked like a new profile. The name cannot
// change; Enabled and the creation time are kept. Audited as
// device.profile.update.
func (s *Service) Update(ctx context.Context, by, name string, edit func(*Spec) error) (*store.DeviceProfile, error) {
	cur, err := s.Store.GetDeviceProfile(ctx, name)
	if err != nil {
		return nil, err
	}
	if cur.FromConfig {
		return nil, readOnly(name)
	}
	spec := SpecOf(cur)
	if err := edit(&spec); err != nil {
		return nil, err
	}
	if spec.Name != name {
		return nil, Problems{{Field: "name", Msg: "the name of a device profile cannot be changed"}}
	}
	n, _, err := spec.Build(s.now())
	if err != nil {
		return nil, err
	}
	out, err := s.Store.UpdateDeviceProfile(ctx, name, func(p *store.DeviceProfile) error {
		if p.FromConfig {
			return readOnly(name)
		}
		if !p.UpdatedAt.Equal(cur.UpdatedAt) {
			return fmt.Errorf("device profile %q %w; try again: %w", name, errChanged, store.ErrConflict)
		}
		n.Enabled, n.CreatedAt = p.Enabled, p.CreatedAt
		*p = *n
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(ctx)
	return out, s.record(ctx, by, "device.profile.update", "", profileDetail(out, ""))
}

// Enable trusts a profile's devices again; it returns the profile and
// whether it was enabled before (audited as device.profile.enable).
func (s *Service) Enable(ctx context.Context, by, name string) (*store.DeviceProfile, bool, error) {
	return s.setEnabled(ctx, by, name, true)
}

// Disable stops trusting a profile's devices at once, keeping its
// settings (audited as device.profile.disable).
func (s *Service) Disable(ctx context.Context, by, name string) (*store.DeviceProfile, bool, error) {
	return s.setEnabled(ctx, by, name, false)
}

func (s *Service) setEnabled(ctx context.Context, by, name string, on bool) (*store.DeviceProfile, bool, error) {
	var was bool
	p, err := s.Store.UpdateDeviceProfile(ctx, name, func(p *store.DeviceProfile) error {
		if p.FromConfig {
			return readOnly(name)
		}
		was, p.Enabled = p.Enabled, on
		return nil
	})
	if err != nil || was == on {
		return p, was, err
	}
	if on {
		// A profile enabled must compile now (a CRL file may be gone).
		if _, err := devicecert.Compile(p); err != nil {
			s.log().Warn("device profile enabled but does not compile", "profile", name, "err", err)
		}
	}
	s.changed(ctx)
	action := map[bool]string{true: "device.profile.enable", false: "device.profile.disable"}[on]
	return p, was, s.record(ctx, by, action, "", profileDetail(p, ""))
}

// Remove deletes a profile managed in the store (device.profile.remove).
func (s *Service) Remove(ctx context.Context, by, name string) error {
	p, err := s.Store.GetDeviceProfile(ctx, name)
	if err != nil {
		return err
	}
	if p.FromConfig {
		return readOnly(name)
	}
	if err := s.Store.DeleteDeviceProfile(ctx, name); err != nil {
		return err
	}
	s.changed(ctx)
	return s.record(ctx, by, "device.profile.remove", "", profileDetail(p, ""))
}

// Get returns one profile.
func (s *Service) Get(ctx context.Context, name string) (*store.DeviceProfile, error) {
	return s.Store.GetDeviceProfile(ctx, name)
}

// List returns every profile, ordered by name.
func (s *Service) List(ctx context.Context) ([]*store.DeviceProfile, error) {
	return s.Store.ListDeviceProfiles(ctx)
}

// Applied is what ApplyConfig changed, by profile name.
type Applied struct {
	Added, Updated, Unchanged, Removed []string
}

// Who and why of ApplyConfig's audit records.
const (
	configBy     = "config"
	configDetail = "declared in the configuration file"
)

// ApplyConfig makes the configuration file's profiles those of the store:
// each is added or replaced (FromConfig, enabled), and a FromConfig
// profile the file no longer declares is removed. Profiles managed in the
// store are left alone; a spec named like one is an error. Every spec is
// checked (each problem named with its profile) before anything changes.
func (s *Service) ApplyConfig(ctx context.Context, specs []Spec) (Applied, error) {
	var (
		done  Applied
		errs  []error
		built []*store.DeviceProfile
		seen  = map[string]bool{}
	)
	existing, err := s.Store.ListDeviceProfiles(ctx)
	if err != nil {
		return done, err
	}
	byName := map[string]*store.DeviceProfile{}
	for _, p := range existing {
		byName[p.Name] = p
	}
	now := s.now()
	for i := range specs {
		spec := &specs[i]
		p, _, err := spec.Build(now)
		if err == nil && seen[p.Name] {
			err = errors.New("declared twice")
		}
		if cur := byName[spec.Name]; err == nil && cur != nil && !cur.FromConfig {
			err = errors.New("is also managed with `sts device profile` (in the database); remove one of the two")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("device profile %q: %w", spec.Name, err))
			continue
		}
		p.FromConfig = true
		seen[p.Name] = true
		built = append(built, p)
	}
	if len(errs) > 0 {
		return done, errors.Join(errs...)
	}
	defer s.changed(ctx)
	for _, p := range existing {
		if p.FromConfig && !seen[p.Name] {
			err := s.Store.DeleteDeviceProfile(ctx, p.Name)
			if errors.Is(err, store.ErrNotFound) {
				continue // another instance, starting too, removed it
			}
			if err != nil {
				return done, fmt.Errorf("remove device profile %q: %w", p.Name, err)
			}
			done.Removed = append(done.Removed, p.Name)
			if err := s.record(ctx, configBy, "device.profile.remove", "", profileDetail(p, configDetail)); err != nil {
				return done, err
			}
		}
	}
	for _, p := range built {
		action, err := s.applyOne(ctx, byName[p.Name], p)
		switch {
		case err != nil:
			return done, err
		case action == "":
			done.Unchanged = append(done.Unchanged, p.Name)
		case action == "device.profile.add":
			done.Added = append(done.Added, p.Name)
		default:
			done.Updated = append(done.Updated, p.Name)
		}
		if action != "" {
			if err := s.record(ctx, configBy, action, "", profileDetail(p, configDetail)); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// applyOne writes the declared profile p over cur (nil: none) and returns
// the action done, or "" when nothing changed. Instances starting at once
// from one file may race: a profile created meanwhile is compared and
// updated instead.
func (s *Service) applyOne(ctx context.Context, cur, p *store.DeviceProfile) (string, error) {
	if cur == nil {
		err := s.Store.CreateDeviceProfile(ctx, p)
		if err == nil {
			return "device.profile.add", nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("add device profile %q: %w", p.Name, err)
		}
		if cur, err = s.Store.GetDeviceProfile(ctx, p.Name); err != nil {
			return "", fmt.Errorf("add device profile %q: %w", p.Name, err)
		}
		if !cur.FromConfig {
			return "", fmt.Errorf("device profile %q is also managed with `sts device profile` (in the database); remove one of the two", p.Name)
		}
	}
	if sameSettings(cur, p) {
		return "", nil
	}
	_, err := s.Store.UpdateDeviceProfile(ctx, p.Name, func(c *store.DeviceProfile) error {
		if !c.FromConfig {
			return fmt.Errorf("device profile %q is managed with `sts device profile` now", p.Name)
		}
		n := *p
		n.CreatedAt = c.CreatedAt
		*c = n
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("update device profile %q: %w", p.Name, err)
	}
	return "device.profile.update", nil
}

// sameSettings reports whether a and b differ only in their times.
func sameSettings(a, b *store.DeviceProfile) bool {
	x, y := SpecOf(a), SpecOf(b)
	return x.Name == y.Name && x.Kind == y.Kind && string(x.Anchors) == string(y.Anchors) &&
		x.Identity == y.Identity && x.EKU == y.EKU && slices.Equal(x.CRLFiles, y.CRLFiles) &&
		x.OCSPURL == y.OCSPURL && slices.Equal(x.FCCIDs, y.FCCIDs) &&
		slices.Equal(x.Audiences, y.Audiences) && slices.Equal(x.Scopes, y.Scopes) &&
		samePolicy(x.Policy, y.Policy) && x.TokenTTL == y.TokenTTL && x.MaxBatch == y.MaxBatch &&
		a.Enabled == b.Enabled && a.FromConfig == b.FromConfig
}

func samePolicy(a, b store.Policy) bool {
	if a.Condition != b.Condition || a.Scope != b.Scope || a.Subject != b.Subject || len(a.Claims) != len(b.Claims) {
		return false
	}
	for k, v := range a.Claims {
		if w, ok := b.Claims[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// changed recompiles the trust after a local write, so that the next
// request sees it; a failure leaves the cache stale, to be retried.
func (s *Service) changed(ctx context.Context) {
	s.trust.Lock()
	s.trust.stale = true
	s.trust.Unlock()
	if err := s.Reload(ctx); err != nil {
		s.log().Warn("reload device trust", "err", err)
	}
}

// Trust returns the compiled enabled profiles. It is compiled on first
// use and recompiled after a change (Reload); a profile that fails to
// compile (a CRL file gone, say) is left out and logged, the others kept.
func (s *Service) Trust(ctx context.Context) (*devicecert.Trust, error) {
	s.trust.RLock()
	t, ok, checked := s.trust.t, s.trust.loaded && !s.trust.stale, s.trust.checked
	s.trust.RUnlock()
	if ok {
		maxAge := s.MaxAge
		if maxAge <= 0 {
			maxAge = MaxTrustAge
		}
		if time.Since(checked) > maxAge && s.reloading.CompareAndSwap(false, true) {
			go func() {
				defer s.reloading.Store(false)
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				if err := s.Reload(ctx); err != nil {
					s.log().Warn("reload device trust", "err", err)
				}
			}()
		}
		return t, nil
	}
	if err := s.Reload(ctx); err != nil {
		// A stale trust is better than none when the store blips.
		s.trust.RLock()
		defer s.trust.RUnlock()
		if s.trust.t != nil {
			s.log().Warn("reload device trust; using the previous one", "err", err)
			return s.trust.t, nil
		}
		return nil, err
	}
	s.trust.RLock()
	defer s.trust.RUnlock()
	return s.trust.t, nil
}

// TrustErrors returns the enabled profiles that failed to compile at the
// last reload, by name.
func (s *Service) TrustErrors() map[string]error {
	s.trust.RLock()
	defer s.trust.RUnlock()
	out := make(map[string]error, len(s.trust.errs))
	for k, v := range s.trust.errs {
		out[k] = v
	}
	return out
}

// Reload reads the profiles and recompiles the trust if any enabled
// profile changed since the last compilation: on a store.ChangeDevice
// from the change feed, after a local write, and periodically (Run).
func (s *Service) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, err := s.Store.ListDeviceProfiles(ctx)
	if err != nil {
		return fmt.Errorf("list device profiles: %w", err)
	}
	var versions []string
	var enabled []*store.DeviceProfile
	for _, p := range ps {
		if p.Enabled {
			enabled = append(enabled, p)
			versions = append(versions, p.Name+"\x00"+p.UpdatedAt.UTC().Format(time.RFC3339Nano))
		}
	}
	s.trust.RLock()
	same := s.trust.loaded && slices.Equal(s.trust.versions, versions)
	s.trust.RUnlock()
	if same {
		s.trust.Lock()
		s.trust.stale, s.trust.checked = false, time.Now()
		s.trust.Unlock()
		return nil
	}
	t := &devicecert.Trust{}
	errs := map[string]error{}
	for _, p := range enabled {
		cp, err := devicecert.Compile(p)
		if err != nil {
			errs[p.Name] = err
			s.log().Warn("device profile does not compile; its devices are refused", "profile", p.Name, "err", err)
			continue
		}
		t.Profiles = append(t.Profiles, cp)
	}
	s.trust.Lock()
	s.trust.t, s.trust.versions, s.trust.errs = t, versions, errs
	s.trust.loaded, s.trust.stale, s.trust.checked = true, false, time.Now()
	s.trust.Unlock()
	return nil
}

// Run reloads the trust every interval until ctx ends, as a fallback to
// the change feed (the CLI on SQLite announces nothing).
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.Reload(ctx); err != nil && ctx.Err() == nil {
			s.log().Warn("reload device trust", "err", err)
		}
	}
}

// Delegated reports, for each device in order, whether proxy may speak
// for it (one query for a batch).
func (s *Service) Delegated(ctx context.Context, proxy string, devs []store.DeviceRef) ([]bool, error) {
	return s.Store.Delegated(ctx, proxy, devs)
}

// checkDelegation checks a proxy and device.
func checkDelegation(proxy string, d store.DeviceRef) Problems {
	var probs Problems
	if err := CheckProxy(proxy); err != nil {
		probs = append(probs, &Problem{Field: "proxy", Msg: err.Error()})
	}
	if err := CheckFCCID(d.FCCID); err != nil {
		probs = append(probs, &Problem{Field: "fcc-id", Msg: err.Error()})
	}
	if err := CheckSerial(d.Serial); err != nil {
		probs = append(probs, &Problem{Field: "serial", Msg: err.Error()})
	}
	return probs
}

func delegationDetail(proxy string, d store.DeviceRef) string {
	return fmt.Sprintf("proxy %s; device fcc_id=%q serial=%q", proxy, d.FCCID, d.Serial)
}

// checkAccount reports an account that does not exist, when the store
// knows accounts.
func (s *Service) checkAccount(ctx context.Context, accountID string) error {
	if accountID == "" {
		return nil
	}
	as, ok := s.Store.(store.Accounts)
	if !ok {
		return nil
	}
	if _, err := as.GetAccount(ctx, accountID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Problems{{Field: "account", Msg: fmt.Sprintf("no account %q", accountID)}}
		}
		return err
	}
	return nil
}

// Delegate lets proxy obtain tokens for dev, registered by accountID (""
// for the operator); it reports whether the delegation is new (audited
// as device.delegate when it is).
func (s *Service) Delegate(ctx context.Context, by, accountID, proxy string, dev store.DeviceRef) (bool, error) {
	if probs := checkDelegation(proxy, dev); len(probs) > 0 {
		return false, probs
	}
	proxy, _ = CanonicalProxy(proxy)
	if err := s.checkAccount(ctx, accountID); err != nil {
		return false, err
	}
	n, err := s.Store.PutDelegations(ctx, []store.Delegation{{
		Proxy: proxy, DeviceRef: dev, AccountID: accountID, CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	}})
	if err != nil || n == 0 {
		return false, err
	}
	return true, s.record(ctx, by, "device.delegate", accountID, delegationDetail(proxy, dev))
}

// Undelegate removes a delegation (audited as device.undelegate);
// store.ErrNotFound if there is none.
func (s *Service) Undelegate(ctx context.Context, by, proxy string, dev store.DeviceRef) error {
	if p, err := CanonicalProxy(proxy); err == nil {
		proxy = p
	}
	if err := s.Store.DeleteDelegation(ctx, proxy, dev); err != nil {
		return err
	}
	return s.record(ctx, by, "device.undelegate", "", delegationDetail(proxy, dev))
}

// ListDelegations returns the delegations f selects.
func (s *Service) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	if p, err := CanonicalProxy(f.Proxy); err == nil {
		f.Proxy = p
	}
	return s.Store.ListDelegations(ctx, f)
}

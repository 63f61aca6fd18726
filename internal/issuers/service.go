package issuers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Service manages the trusted issuers of a store. Every change is checked
// (Spec.Build), the clients an issuer names must exist, and issuers
// declared in the configuration file can change only there.
type Service struct {
	Store store.Store
	// Issuer is this server's issuer URL, the default audience upstream
	// tokens must carry.
	Issuer string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ErrReadOnly is wrapped by the errors of changes to an issuer declared in
// the configuration file.
var ErrReadOnly = errors.New("declared in the configuration file")

// errChanged: an issuer changed between Update's read and its write.
var errChanged = errors.New("changed meanwhile")

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func readOnly(name string) error {
	return fmt.Errorf("issuer %q is %w; change it there", name, ErrReadOnly)
}

// checkClients reports the clients of ti that do not exist.
func (s *Service) checkClients(ctx context.Context, ti *store.TrustedIssuer) error {
	var probs Problems
	for _, id := range ti.Clients {
		if id == AllClients {
			continue
		}
		_, err := s.Store.GetClient(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			probs = append(probs, &Problem{Field: "client", Msg: fmt.Sprintf("no client %q", id)})
		case err != nil:
			return err
		}
	}
	if len(probs) > 0 {
		return probs
	}
	return nil
}

// audit records a change made by "by" (e.g. "cli", "operator:alice",
// "config"): what changes whose tokens this server trusts is a security
// event.
func (s *Service) audit(ctx context.Context, by, action string, ti *store.TrustedIssuer, detail string) error {
	d := fmt.Sprintf("issuer %s (%s)", ti.Name, ti.Issuer)
	if detail != "" {
		d += "; " + detail
	}
	return s.Store.AppendAudit(ctx, []store.AuditRecord{{
		Time: s.now(), Action: action, Decision: store.DecisionGranted, Subject: by, Detail: d,
	}})
}

// Add checks spec and stores it as a new, enabled issuer managed in the
// store, made by "by" (audited as issuer.add). A name or issuer URL
// already in use is store.ErrConflict.
func (s *Service) Add(ctx context.Context, by string, spec Spec) (*store.TrustedIssuer, error) {
	ti, err := spec.Build(s.Issuer, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.checkClients(ctx, ti); err != nil {
		return nil, err
	}
	if err := s.Store.CreateIssuer(ctx, ti); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("an issuer named %q or with issuer URL %q already exists: %w", ti.Name, ti.Issuer, err)
		}
		return nil, err
	}
	return ti, s.audit(ctx, by, "issuer.add", ti, "")
}

// Update changes an issuer managed in the store: edit (called before the
// store's transaction, so it may take its time) receives its current
// settings as a Spec (every default explicit) and changes only what it
// means to; the result is checked like a new issuer. The name cannot
// change. Enabled, the source and the creation time are kept. The change
// is audited as issuer.update, made by "by".
func (s *Service) Update(ctx context.Context, by, name string, edit func(*Spec) error) (*store.TrustedIssuer, error) {
	cur, err := s.Store.GetIssuer(ctx, name)
	if err != nil {
		return nil, err
	}
	if cur.Source == store.IssuerSourceConfig {
		return nil, readOnly(name)
	}
	spec := SpecOf(cur)
	if err := edit(&spec); err != nil {
		return nil, err
	}
	if spec.Name != name {
		return nil, Problems{{Field: "name", Msg: "the name of an issuer cannot be changed"}}
	}
	n, err := spec.Build(s.Issuer, s.now())
	if err != nil {
		return nil, err
	}
	if err := s.checkClients(ctx, n); err != nil {
		return nil, err
	}
	out, err := s.Store.UpdateIssuer(ctx, name, func(ti *store.TrustedIssuer) error {
		// Another process may have changed it meanwhile: a change of
		// source (the file now declares it) wins over this one.
		if ti.Source == store.IssuerSourceConfig {
			return readOnly(name)
		}
		// edit saw cur: a change made since would be lost silently.
		if !ti.UpdatedAt.Equal(cur.UpdatedAt) {
			return fmt.Errorf("issuer %q %w; try again: %w", name, errChanged, store.ErrConflict)
		}
		n.Enabled, n.Source, n.CreatedAt = ti.Enabled, ti.Source, ti.CreatedAt
		*ti = *n
		return nil
	})
	if errors.Is(err, store.ErrConflict) && !errors.Is(err, errChanged) {
		return nil, fmt.Errorf("another issuer has issuer URL %q: %w", n.Issuer, err)
	}
	if err != nil {
		return nil, err
	}
	return out, s.audit(ctx, by, "issuer.update", out, "")
}

// Enable lets an issuer's tokens be accepted again; it returns the issuer
// and whether it was enabled before (audited as issuer.enable).
func (s *Service) Enable(ctx context.Context, by, name string) (*store.TrustedIssuer, bool, error) {
	return s.setEnabled(ctx, by, name, true)
}

// Disable stops accepting an issuer's tokens at once, keeping its
// settings; it returns the issuer and whether it was enabled before
// (audited as issuer.disable).
func (s *Service) Disable(ctx context.Context, by, name string) (*store.TrustedIssuer, bool, error) {
	return s.setEnabled(ctx, by, name, false)
}

func (s *Service) setEnabled(ctx context.Context, by, name string, on bool) (*store.TrustedIssuer, bool, error) {
	var was bool
	ti, err := s.Store.UpdateIssuer(ctx, name, func(ti *store.TrustedIssuer) error {
		if ti.Source == store.IssuerSourceConfig {
			return readOnly(name)
		}
		was, ti.Enabled = ti.Enabled, on
		return nil
	})
	if err != nil || was == on {
		return ti, was, err
	}
	action := map[bool]string{true: "issuer.enable", false: "issuer.disable"}[on]
	return ti, was, s.audit(ctx, by, action, ti, "")
}

// Remove deletes an issuer managed in the store (audited as
// issuer.remove).
func (s *Service) Remove(ctx context.Context, by, name string) error {
	ti, err := s.Store.GetIssuer(ctx, name)
	if err != nil {
		return err
	}
	if ti.Source == store.IssuerSourceConfig {
		return readOnly(name)
	}
	if err := s.Store.DeleteIssuer(ctx, name); err != nil {
		return err
	}
	return s.audit(ctx, by, "issuer.remove", ti, "")
}

// Get returns one issuer.
func (s *Service) Get(ctx context.Context, name string) (*store.TrustedIssuer, error) {
	return s.Store.GetIssuer(ctx, name)
}

// List returns every issuer, ordered by name.
func (s *Service) List(ctx context.Context) ([]*store.TrustedIssuer, error) {
	return s.Store.ListIssuers(ctx)
}

// Applied is what ApplyConfig changed, by issuer name.
type Applied struct {
	Added, Updated, Unchanged, Removed []string
}

// ApplyConfig makes the configuration file's issuers those of the store:
// each spec is added or replaced (source config, enabled), and an issuer
// of source config the file no longer declares is removed. Issuers
// managed in the store are left alone; a spec named like one of them is an
// error, as is any invalid spec (every problem, naming its issuer). The
// specs are all checked before anything changes.
func (s *Service) ApplyConfig(ctx context.Context, specs []Spec) (Applied, error) {
	var (
		done  Applied
		errs  []error
		built []*store.TrustedIssuer
		seen  = map[string]bool{}
		iss   = map[string]string{}
	)
	existing, err := s.Store.ListIssuers(ctx)
	if err != nil {
		return done, err
	}
	byName := map[string]*store.TrustedIssuer{}
	for _, ti := range existing {
		byName[ti.Name] = ti
	}
	now := s.now()
	for i := range specs {
		spec := &specs[i]
		ti, err := spec.Build(s.Issuer, now)
		if err == nil {
			ti.Source = store.IssuerSourceConfig
			err = s.checkClients(ctx, ti)
		}
		if err == nil && seen[ti.Name] {
			err = errors.New("declared twice")
		}
		if err == nil && iss[ti.Issuer] != "" {
			err = fmt.Errorf("has the issuer URL of issuer %q", iss[ti.Issuer])
		}
		if cur := byName[spec.Name]; err == nil && cur != nil && cur.Source != store.IssuerSourceConfig {
			err = errors.New("is also managed with `sts issuer` (in the database); remove one of the two")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("issuer %q: %w", spec.Name, err))
			continue
		}
		seen[ti.Name], iss[ti.Issuer] = true, ti.Name
		built = append(built, ti)
	}
	if len(errs) > 0 {
		return done, errors.Join(errs...)
	}
	// Removals first, so that an issuer URL moved from one declared
	// issuer to another is free when the second is written.
	for _, ti := range existing {
		if ti.Source == store.IssuerSourceConfig && !seen[ti.Name] {
			err := s.Store.DeleteIssuer(ctx, ti.Name)
			if errors.Is(err, store.ErrNotFound) {
				continue // another instance, starting too, removed it
			}
			if err != nil {
				return done, fmt.Errorf("remove issuer %q: %w", ti.Name, err)
			}
			done.Removed = append(done.Removed, ti.Name)
			if err := s.audit(ctx, configBy, "issuer.remove", ti, configDetail); err != nil {
				return done, err
			}
		}
	}
	for _, ti := range built {
		changed, err := s.applyOne(ctx, byName[ti.Name], ti)
		switch {
		case err != nil:
			return done, err
		case changed == "":
			done.Unchanged = append(done.Unchanged, ti.Name)
		case changed == "issuer.add":
			done.Added = append(done.Added, ti.Name)
		default:
			done.Updated = append(done.Updated, ti.Name)
		}
		if changed != "" {
			if err := s.audit(ctx, configBy, changed, ti, configDetail); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// Who and why of ApplyConfig's audit records.
const (
	configBy     = "config"
	configDetail = "declared in the configuration file"
)

// applyOne writes one declared issuer ti over cur (nil: none was listed)
// and returns the action done ("issuer.add", "issuer.update") or "" when
// nothing changed. Several instances may start at once from one file and
// database: an issuer another one created meanwhile is compared and
// updated instead.
func (s *Service) applyOne(ctx context.Context, cur, ti *store.TrustedIssuer) (string, error) {
	if cur == nil {
		err := s.Store.CreateIssuer(ctx, ti)
		if err == nil {
			return "issuer.add", nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("add issuer %q: %w", ti.Name, err)
		}
		if cur, err = s.Store.GetIssuer(ctx, ti.Name); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return "", fmt.Errorf("issuer %q: another issuer has issuer URL %s", ti.Name, ti.Issuer)
			}
			return "", fmt.Errorf("add issuer %q: %w", ti.Name, err)
		}
		if cur.Source != store.IssuerSourceConfig {
			return "", fmt.Errorf("issuer %q is also managed with `sts issuer` (in the database); remove one of the two", ti.Name)
		}
	}
	if sameSettings(cur, ti) {
		return "", nil
	}
	_, err := s.Store.UpdateIssuer(ctx, ti.Name, func(c *store.TrustedIssuer) error {
		if c.Source != store.IssuerSourceConfig {
			return fmt.Errorf("issuer %q is managed with `sts issuer` now", ti.Name)
		}
		n := *ti
		n.CreatedAt = c.CreatedAt
		*c = n
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("update issuer %q: %w", ti.Name, err)
	}
	return "issuer.update", nil
}

// sameSettings reports whether a and b differ only in their times, so
// that a restart with the same file writes (and announces) nothing.
func sameSettings(a, b *store.TrustedIssuer) bool {
	x, y := *a, *b
	x.CreatedAt, x.UpdatedAt, y.CreatedAt, y.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	x.JWKS, y.JWKS = nil, nil
	x.Policy, y.Policy = store.Policy{}, store.Policy{}
	if string(a.JWKS) != string(b.JWKS) || !samePolicy(a.Policy, b.Policy) {
		return false
	}
	return slices.Equal(x.TokenTypes, y.TokenTypes) && slices.Equal(x.Algorithms, y.Algorithms) &&
		slices.Equal(x.Audiences, y.Audiences) && slices.Equal(x.Clients, y.Clients) &&
		x.Name == y.Name && x.Issuer == y.Issuer && x.Enabled == y.Enabled && x.Source == y.Source &&
		x.JWKSURI == y.JWKSURI && x.IntrospectionEndpoint == y.IntrospectionEndpoint &&
		x.IntrospectionClientID == y.IntrospectionClientID && x.IntrospectionClientSecret == y.IntrospectionClientSecret &&
		x.MaxAge == y.MaxAge && x.Leeway == y.Leeway && x.SubjectPrefix == y.SubjectPrefix && x.AllowHTTP == y.AllowHTTP
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

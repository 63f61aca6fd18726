package devices_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/devicecert/devicetest"
	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
)

func problemFields(err error) []string {
	var probs devices.Problems
	if !errors.As(err, &probs) {
		return nil
	}
	var out []string
	for _, p := range probs {
		out = append(out, p.Field)
	}
	return out
}

func cbsdLeaf(t *testing.T, pki *devicetest.PKI, fcc, serial string) *devicetest.Issued {
	return pki.Leaf(t, devicetest.Leaf{Role: devicecert.RoleCBSD, FCCID: fcc, Serial: serial})
}

func TestAddProfileDefaults(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	pki := devicetest.New(t)
	p, err := s.Add(ctx, "cli", devices.Spec{Name: "cbrs", Anchors: pki.RootPEM})
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != store.DeviceKindCBRS || p.EKU != store.EKUClientAuth || p.MaxBatch != devices.DefaultMaxBatch || !p.Enabled || p.FromConfig {
		t.Errorf("defaults: %+v", p)
	}
	got, err := st.GetDeviceProfile(ctx, "cbrs")
	if err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("stored: %+v, %v", got, err)
	}
	recs := audited(t, st, "device.profile.add")
	if len(recs) != 1 || recs[0].Subject != "cli" || !strings.Contains(recs[0].Detail, "cbrs") {
		t.Errorf("audit: %+v", recs)
	}
	if _, err := s.Add(ctx, "cli", devices.Spec{Name: "cbrs", Anchors: pki.RootPEM}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Add twice: %v", err)
	}
}

// Every problem is reported by field, and nothing is stored.
func TestAddProfileRefusals(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	pki := devicetest.New(t)
	leaf := cbsdLeaf(t, pki, "ABC", "1")
	for _, c := range []struct {
		name string
		spec devices.Spec
		want []string
	}{
		{"everything", devices.Spec{
			Name: "Bad", Kind: "tpm", EKU: "server", CRLFiles: []string{"relative.crl"}, OCSPURL: "ldap://x",
			FCCIDs: []string{""}, Audiences: []string{" "}, Scopes: []string{"a b"}, TokenTTL: 48 * time.Hour, MaxBatch: 513,
		}, []string{"name", "kind", "anchors", "eku", "crl", "ocsp", "fcc-id", "audience", "scope", "token-ttl", "max-batch"}},
		{"x509 without identity", devices.Spec{Name: "x", Kind: store.DeviceKindX509, Anchors: pki.RootPEM}, []string{"identity"}},
		{"cbrs with identity", devices.Spec{Name: "x", Anchors: pki.RootPEM, Identity: "cert.subject.cn"}, []string{"identity"}},
		{"bad identity CEL", devices.Spec{Name: "x", Kind: store.DeviceKindX509, Anchors: pki.RootPEM, Identity: "cert.nosuch +"}, []string{"identity"}},
		{"leaf as anchor", devices.Spec{Name: "x", Anchors: leaf.PEM()}, []string{"anchors"}},
		{"private key as anchor", devices.Spec{Name: "x", Anchors: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}, []string{"anchors"}},
		{"missing CRL", devices.Spec{Name: "x", Anchors: pki.RootPEM, CRLFiles: []string{"/nonexistent/ca.crl"}}, []string{"crl"}},
		{"bad condition", devices.Spec{Name: "x", Anchors: pki.RootPEM, Policy: store.Policy{Condition: "1 +"}}, []string{"condition"}},
		{"reserved claim", devices.Spec{Name: "x", Anchors: pki.RootPEM, Policy: store.Policy{Claims: map[string]string{"sub": `"x"`}}}, []string{"claim sub", "claim sub"}},
		{"subject rule", devices.Spec{Name: "x", Anchors: pki.RootPEM, Policy: store.Policy{Subject: `"x"`}}, []string{"subject"}},
	} {
		_, err := s.Add(ctx, "cli", c.spec)
		if got := problemFields(err); !slices.Equal(got, c.want) {
			t.Errorf("%s: fields %v, want %v (%v)", c.name, got, c.want, err)
		}
	}
	ps, _ := st.ListDeviceProfiles(ctx)
	if len(ps) != 0 {
		t.Errorf("refused profiles stored: %d", len(ps))
	}
	if recs := audited(t, st, "device.profile"); len(recs) != 0 {
		t.Errorf("refusals audited as changes: %+v", recs)
	}
}

// The trust follows every change: add, disable, enable, update, remove.
func TestTrustFollowsChanges(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	pki, other := devicetest.New(t), devicetest.NewWith(t, devicetest.Options{Name: "Other"})
	leaf, otherLeaf := cbsdLeaf(t, pki, "ABC", "1"), cbsdLeaf(t, other, "ABC", "2")
	verify := func(l *devicetest.Issued) error {
		t.Helper()
		tr, err := s.Trust(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = tr.Verify(ctx, l.Chain, devicecert.RoleCBSD, time.Now())
		return err
	}
	if verify(leaf) == nil {
		t.Fatal("trusted with no profile")
	}
	if _, err := s.Add(ctx, "cli", devices.Spec{Name: "cbrs", Anchors: pki.RootPEM}); err != nil {
		t.Fatal(err)
	}
	if err := verify(leaf); err != nil {
		t.Fatalf("after Add: %v", err)
	}
	if verify(otherLeaf) == nil {
		t.Fatal("another PKI's device trusted")
	}
	if _, was, err := s.Disable(ctx, "cli", "cbrs"); err != nil || !was {
		t.Fatal(was, err)
	}
	if verify(leaf) == nil {
		t.Fatal("trusted after Disable")
	}
	if _, _, err := s.Enable(ctx, "cli", "cbrs"); err != nil {
		t.Fatal(err)
	}
	if err := verify(leaf); err != nil {
		t.Fatalf("after Enable: %v", err)
	}
	if _, err := s.Update(ctx, "operator:bob", "cbrs", func(sp *devices.Spec) error { sp.Anchors = other.RootPEM; return nil }); err != nil {
		t.Fatal(err)
	}
	if verify(leaf) == nil || verify(otherLeaf) != nil {
		t.Fatal("Update of the anchors not applied")
	}
	if _, err := s.Update(ctx, "cli", "cbrs", func(sp *devices.Spec) error { sp.Name = "x"; return nil }); err == nil {
		t.Error("Update renamed the profile")
	}
	if err := s.Remove(ctx, "cli", "cbrs"); err != nil {
		t.Fatal(err)
	}
	if verify(otherLeaf) == nil {
		t.Fatal("trusted after Remove")
	}
	for _, a := range []string{"add", "disable", "enable", "update", "remove"} {
		if recs := audited(t, st, "device.profile."+a); len(recs) != 1 {
			t.Errorf("device.profile.%s audited %d times", a, len(recs))
		}
	}
}

// Another instance's change is seen on Reload (the change feed's call)
// and by the periodic refresh; an unchanged store compiles nothing.
func TestTrustOtherInstance(t *testing.T) {
	ctx := context.Background()
	a, st := newService(t)
	b := &devices.Service{Store: st}
	pki := devicetest.New(t)
	leaf := cbsdLeaf(t, pki, "ABC", "1")
	t0, err := b.Trust(ctx)
	if err != nil || len(t0.Profiles) != 0 {
		t.Fatal(t0, err)
	}
	if _, err := a.Add(ctx, "cli", devices.Spec{Name: "cbrs", Anchors: pki.RootPEM}); err != nil {
		t.Fatal(err)
	}
	if t1, _ := b.Trust(ctx); t1 != t0 {
		t.Fatal("b recompiled without being told")
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	t2, _ := b.Trust(ctx)
	if _, _, err := t2.Verify(ctx, leaf.Chain, devicecert.RoleCBSD, time.Now()); err != nil {
		t.Fatalf("b after Reload: %v", err)
	}
	if err := b.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if t3, _ := b.Trust(ctx); t3 != t2 {
		t.Error("Reload of an unchanged store recompiled")
	}
	// The periodic refresh.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b.Run(runCtx, 10*time.Millisecond)
	if _, _, err := a.Disable(ctx, "cli", "cbrs"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr, _ := b.Trust(ctx)
		if len(tr.Profiles) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic refresh did not see the change")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A profile whose CRL file disappears is left out of the trust, the
// others kept.
func TestTrustSkipsBrokenProfile(t *testing.T) {
	ctx := context.Background()
	s, _ := newService(t)
	pki, other := devicetest.New(t), devicetest.NewWith(t, devicetest.Options{Name: "Other"})
	crl := filepath.Join(t.TempDir(), "ca.crl")
	pki.CRL(t, pki.CBSDCA, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), crl)
	if _, err := s.Add(ctx, "cli", devices.Spec{Name: "a", Anchors: pki.RootPEM, CRLFiles: []string{crl}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "cli", devices.Spec{Name: "b", Anchors: other.RootPEM}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	// Another change makes it recompile.
	if _, _, err := s.Disable(ctx, "cli", "b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Enable(ctx, "cli", "b"); err != nil {
		t.Fatal(err)
	}
	tr, err := s.Trust(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Profiles) != 1 || tr.Profiles[0].Spec.Name != "b" {
		t.Errorf("trust holds %d profiles", len(tr.Profiles))
	}
	if errs := s.TrustErrors(); errs["a"] == nil {
		t.Errorf("TrustErrors = %v", errs)
	}
}

func TestApplyConfig(t *testing.T) {
	ctx := context.Background()
	s, st := newService(t)
	pki := devicetest.New(t)
	if _, err := s.Add(ctx, "cli", devices.Spec{Name: "managed", Anchors: pki.RootPEM}); err != nil {
		t.Fatal(err)
	}
	specs := []devices.Spec{{Name: "declared", Anchors: pki.RootPEM, EKU: store.EKUAny}}
	got, err := s.ApplyConfig(ctx, specs)
	if err != nil || !slices.Equal(got.Added, []string{"declared"}) {
		t.Fatalf("ApplyConfig = %+v, %v", got, err)
	}
	p, _ := st.GetDeviceProfile(ctx, "declared")
	if !p.FromConfig || !p.Enabled {
		t.Errorf("declared: %+v", p)
	}
	// Read-only elsewhere.
	if _, err := s.Update(ctx, "cli", "declared", func(*devices.Spec) error { return nil }); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("Update: %v", err)
	}
	if _, _, err := s.Disable(ctx, "cli", "declared"); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("Disable: %v", err)
	}
	if err := s.Remove(ctx, "cli", "declared"); !errors.Is(err, devices.ErrReadOnly) {
		t.Errorf("Remove: %v", err)
	}
	// The same file again changes nothing; a change updates.
	if got, err := s.ApplyConfig(ctx, specs); err != nil || !slices.Equal(got.Unchanged, []string{"declared"}) {
		t.Errorf("again = %+v, %v", got, err)
	}
	specs[0].EKU = store.EKUNone
	if got, err := s.ApplyConfig(ctx, specs); err != nil || !slices.Equal(got.Updated, []string{"declared"}) {
		t.Errorf("changed = %+v, %v", got, err)
	}
	// A name managed in the store, or a bad spec: nothing changes.
	bad := []devices.Spec{{Name: "declared", Anchors: pki.RootPEM}, {Name: "managed", Anchors: pki.RootPEM}, {Name: "x", Kind: "tpm", Anchors: pki.RootPEM}}
	_, err = s.ApplyConfig(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), `"managed": is also managed`) || !strings.Contains(err.Error(), `"x": kind`) {
		t.Errorf("bad file: %v", err)
	}
	if p, _ := st.GetDeviceProfile(ctx, "declared"); p.EKU != store.EKUNone {
		t.Error("a refused file changed a profile")
	}
	// A profile the file no longer declares is removed; managed ones stay.
	if got, err := s.ApplyConfig(ctx, nil); err != nil || !slices.Equal(got.Removed, []string{"declared"}) {
		t.Errorf("empty = %+v, %v", got, err)
	}
	ps, _ := st.ListDeviceProfiles(ctx)
	if len(ps) != 1 || ps[0].Name != "managed" {
		t.Errorf("left: %v", ps)
	}
	if recs := audited(t, st, "device.profile"); len(recs) < 4 || recs[0].Subject != "config" {
		t.Errorf("audit: %+v", recs)
	}
}

// An instance nobody tells of changes still sees them after MaxAge.
func TestTrustMaxAge(t *testing.T) {
	ctx := context.Background()
	a, st := newService(t)
	b := &devices.Service{Store: st, MaxAge: 20 * time.Millisecond}
	pki := devicetest.New(t)
	if _, err := b.Trust(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, "cli", devices.Spec{Name: "cbrs", Anchors: pki.RootPEM}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr, err := b.Trust(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tr.Profiles) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the trust never caught up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

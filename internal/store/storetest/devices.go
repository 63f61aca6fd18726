package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var deviceTests = []test{
	{"ProfileCreateGet", testDeviceProfileCreateGet},
	{"ProfileCreateConflict", testDeviceProfileCreateConflict},
	{"ProfileList", testDeviceProfileList},
	{"ProfileUpdate", testDeviceProfileUpdate},
	{"ProfileUpdateAborts", testDeviceProfileUpdateAborts},
	{"ProfileUpdateConcurrent", testDeviceProfileUpdateConcurrent},
	{"ProfileDelete", testDeviceProfileDelete},
	{"PutDelegations", testPutDelegations},
	{"PutDelegationsLarge", testPutDelegationsLarge},
	{"DeleteDelegation", testDeleteDelegation},
	{"ListDelegations", testListDelegations},
	{"Delegated", testDelegated},
	{"DelegatedMany", testDelegatedMany},
}

// sampleDeviceProfile sets every field of a device trust profile.
func sampleDeviceProfile(name string, created time.Time) *store.DeviceProfile {
	return &store.DeviceProfile{
		Name:      name,
		Kind:      store.DeviceKindCBRS,
		Anchors:   []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		Identity:  `cert.subject.CN + "/" + cert.serial`,
		EKU:       store.EKUAny,
		CRLFiles:  []string{"/etc/sts/cbsd-ca.crl", "/etc/sts/root.crl"},
		OCSPURL:   "http://ocsp.example.com",
		FCCIDs:    []string{"ABC-123", "XYZ:9"},
		Audiences: []string{"https://sas.example.com", "sas"},
		Scopes:    []string{"spectrum.inquiry", "grant"},
		Policy: store.Policy{
			Condition: `device.fcc_id != ""`,
			Scope:     `["grant"]`,
			Claims:    map[string]string{"fcc": "device.fcc_id"},
		},
		TokenTTL:  10*time.Minute + time.Nanosecond,
		MaxBatch:  512,
		Enabled:   true,
		CreatedAt: created,
		UpdatedAt: created,
	}
}

func normDeviceProfile(p *store.DeviceProfile) *store.DeviceProfile {
	if p == nil {
		return nil
	}
	n := *p
	n.Anchors = normBytes(n.Anchors)
	n.CRLFiles = normList(n.CRLFiles)
	n.FCCIDs = normList(n.FCCIDs)
	n.Audiences = normList(n.Audiences)
	n.Scopes = normList(n.Scopes)
	if len(n.Policy.Claims) == 0 {
		n.Policy.Claims = nil
	}
	n.CreatedAt = normTime(n.CreatedAt)
	n.UpdatedAt = normTime(n.UpdatedAt)
	return &n
}

func testDeviceProfileCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := sampleDeviceProfile("cbrs", at(0))
	minimal := &store.DeviceProfile{Name: "min", Kind: store.DeviceKindX509, FromConfig: true}
	for _, p := range []*store.DeviceProfile{full, minimal} {
		must(t, s.CreateDeviceProfile(ctx, p))
		got, err := s.GetDeviceProfile(ctx, p.Name)
		must(t, err)
		equal(t, "GetDeviceProfile "+p.Name, got, p, normDeviceProfile)
	}
	// The result is the caller's to change.
	got, err := s.GetDeviceProfile(ctx, "cbrs")
	must(t, err)
	got.Anchors[0] = 'X'
	got.FCCIDs[0] = "changed"
	got.Policy.Claims["fcc"] = "changed"
	again, err := s.GetDeviceProfile(ctx, "cbrs")
	must(t, err)
	equal(t, "GetDeviceProfile after changing an earlier result", again, full, normDeviceProfile)

	_, err = s.GetDeviceProfile(ctx, "absent")
	wantErr(t, "GetDeviceProfile absent", err, store.ErrNotFound)
}

func testDeviceProfileCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := sampleDeviceProfile("dup", at(0))
	must(t, s.CreateDeviceProfile(ctx, p))
	other := sampleDeviceProfile("dup", at(time.Hour))
	other.Kind = store.DeviceKindX509
	wantErr(t, "CreateDeviceProfile with an existing name", s.CreateDeviceProfile(ctx, other), store.ErrConflict)
	got, err := s.GetDeviceProfile(ctx, "dup")
	must(t, err)
	equal(t, "GetDeviceProfile after the conflict", got, p, normDeviceProfile)
}

func testDeviceProfileList(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListDeviceProfiles(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("ListDeviceProfiles on an empty store = %d profiles", len(got))
	}
	names := []string{"oem-b", "cbrs", "Z-upper", "a-1", "a1"}
	for n, name := range names {
		must(t, s.CreateDeviceProfile(ctx, sampleDeviceProfile(name, at(time.Duration(n)*time.Minute))))
	}
	got, err = s.ListDeviceProfiles(ctx)
	must(t, err)
	var gotNames []string
	for _, p := range got {
		gotNames = append(gotNames, p.Name)
	}
	want := slices.Clone(names)
	slices.Sort(want) // by bytes: "Z-upper" first
	if !slices.Equal(gotNames, want) {
		t.Fatalf("ListDeviceProfiles names = %v, want %v", gotNames, want)
	}
	equal(t, "ListDeviceProfiles[cbrs]", got[slices.Index(gotNames, "cbrs")], sampleDeviceProfile("cbrs", at(time.Minute)), normDeviceProfile)
}

func testDeviceProfileUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateDeviceProfile(ctx, sampleDeviceProfile("upd", at(0))))
	before := time.Now().Truncate(time.Microsecond)
	edit := func(p *store.DeviceProfile) {
		p.Kind = store.DeviceKindX509
		p.Anchors = []byte("other")
		p.CRLFiles, p.FCCIDs = nil, []string{"ONE"}
		p.OCSPURL = ""
		p.Policy = store.Policy{Condition: "true"}
		p.TokenTTL, p.MaxBatch = 0, 100
		p.Enabled = false
	}
	got, err := s.UpdateDeviceProfile(ctx, "upd", func(p *store.DeviceProfile) error { edit(p); return nil })
	after := time.Now()
	must(t, err)
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %v, want within [%v, %v]", got.UpdatedAt, before, after)
	}
	want := sampleDeviceProfile("upd", at(0))
	edit(want)
	want.UpdatedAt = got.UpdatedAt
	equal(t, "UpdateDeviceProfile result", got, want, normDeviceProfile)
	stored, err := s.GetDeviceProfile(ctx, "upd")
	must(t, err)
	equal(t, "GetDeviceProfile after UpdateDeviceProfile", stored, want, normDeviceProfile)

	_, err = s.UpdateDeviceProfile(ctx, "upd", func(p *store.DeviceProfile) error { p.Name = "renamed"; return nil })
	if err == nil {
		t.Fatal("UpdateDeviceProfile changing the name: no error")
	}
	if _, err := s.GetDeviceProfile(ctx, "renamed"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDeviceProfile(renamed): err = %v, want ErrNotFound", err)
	}
	_, err = s.UpdateDeviceProfile(ctx, "absent", func(*store.DeviceProfile) error { return nil })
	wantErr(t, "UpdateDeviceProfile absent", err, store.ErrNotFound)
}

func testDeviceProfileUpdateAborts(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := sampleDeviceProfile("abort", at(0))
	must(t, s.CreateDeviceProfile(ctx, p))
	errStop := errors.New("stop")
	_, err := s.UpdateDeviceProfile(ctx, "abort", func(p *store.DeviceProfile) error {
		p.Enabled = false
		return errStop
	})
	wantErr(t, "UpdateDeviceProfile returning an error", err, errStop)
	got, err := s.GetDeviceProfile(ctx, "abort")
	must(t, err)
	equal(t, "GetDeviceProfile after an aborted update", got, p, normDeviceProfile)
}

// Concurrent updates queue: none is lost.
func testDeviceProfileUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateDeviceProfile(ctx, &store.DeviceProfile{Name: "race", Kind: store.DeviceKindCBRS}))
	var wg sync.WaitGroup
	errs := make([]error, concurrency)
	for i := range concurrency {
		wg.Go(func() {
			_, errs[i] = s.UpdateDeviceProfile(ctx, "race", func(p *store.DeviceProfile) error {
				p.FCCIDs = append(p.FCCIDs, fmt.Sprintf("F%02d", i))
				return nil
			})
		})
	}
	wg.Wait()
	if ok, _, other := countErrs(errs, store.ErrConflict); ok != concurrency {
		t.Fatalf("%d of %d updates succeeded; an error: %v", ok, concurrency, other)
	}
	got, err := s.GetDeviceProfile(ctx, "race")
	must(t, err)
	if len(got.FCCIDs) != concurrency {
		t.Errorf("FCCIDs after %d concurrent appends = %v", concurrency, got.FCCIDs)
	}
}

func testDeviceProfileDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateDeviceProfile(ctx, sampleDeviceProfile("gone", at(0))))
	must(t, s.CreateDeviceProfile(ctx, sampleDeviceProfile("kept", at(0))))
	must(t, s.DeleteDeviceProfile(ctx, "gone"))
	_, err := s.GetDeviceProfile(ctx, "gone")
	wantErr(t, "GetDeviceProfile after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteDeviceProfile twice", s.DeleteDeviceProfile(ctx, "gone"), store.ErrNotFound)
	if _, err := s.GetDeviceProfile(ctx, "kept"); err != nil {
		t.Errorf("the other profile: %v", err)
	}
}

func dev(fcc, serial string) store.DeviceRef { return store.DeviceRef{FCCID: fcc, Serial: serial} }

func deleg(proxy, fcc, serial, account string, created time.Time) store.Delegation {
	return store.Delegation{Proxy: proxy, DeviceRef: dev(fcc, serial), AccountID: account, CreatedAt: created}
}

func normDelegations(ds []store.Delegation) []store.Delegation {
	out := slices.Clone(ds)
	for i := range out {
		out[i].CreatedAt = normTime(out[i].CreatedAt)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func testPutDelegations(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, err := s.PutDelegations(ctx, nil)
	must(t, err)
	if n != 0 {
		t.Errorf("PutDelegations(nil) = %d", n)
	}
	first := []store.Delegation{
		deleg("dp:F1:proxy", "FCC1", "S1", "acct1", at(0)),
		deleg("dp:F1:proxy", "FCC1", "S2", "acct1", at(0)),
	}
	n, err = s.PutDelegations(ctx, first)
	must(t, err)
	if n != 2 {
		t.Errorf("PutDelegations of 2 new = %d", n)
	}
	// An existing one is kept as it is (account, time); a duplicate
	// inside one call counts once.
	again := []store.Delegation{
		deleg("dp:F1:proxy", "FCC1", "S1", "acct2", at(time.Hour)),
		deleg("dp:F1:proxy", "FCC1", "S3", "acct2", at(time.Hour)),
		deleg("dp:F1:proxy", "FCC1", "S3", "acct2", at(time.Hour)),
	}
	n, err = s.PutDelegations(ctx, again)
	must(t, err)
	if n != 1 {
		t.Errorf("PutDelegations of 1 new, 1 existing, 1 repeated = %d, want 1", n)
	}
	got, err := s.ListDelegations(ctx, store.DelegationFilter{})
	must(t, err)
	want := []store.Delegation{first[0], first[1], again[1]}
	equal(t, "ListDelegations", got, want, normDelegations)
}

// An account's import of many devices: one transaction of several chunks.
func testPutDelegationsLarge(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 2500
	ds := make([]store.Delegation, n)
	for i := range ds {
		ds[i] = deleg("dp:F:big", "FCC", fmt.Sprintf("S%05d", i), "acct", at(0))
	}
	added, err := s.PutDelegations(ctx, ds)
	must(t, err)
	if added != n {
		t.Errorf("PutDelegations of %d = %d", n, added)
	}
	got, err := s.ListDelegations(ctx, store.DelegationFilter{Proxy: "dp:F:big", Limit: n + 1})
	must(t, err)
	equal(t, "ListDelegations", got, ds, normDelegations)
	added, err = s.PutDelegations(ctx, ds)
	must(t, err)
	if added != 0 {
		t.Errorf("PutDelegations again = %d, want 0", added)
	}
}

func testDeleteDelegation(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.PutDelegations(ctx, []store.Delegation{
		deleg("dp:a", "F", "1", "", at(0)), deleg("dp:b", "F", "1", "", at(0)),
	})
	must(t, err)
	must(t, s.DeleteDelegation(ctx, "dp:a", dev("F", "1")))
	wantErr(t, "DeleteDelegation twice", s.DeleteDelegation(ctx, "dp:a", dev("F", "1")), store.ErrNotFound)
	wantErr(t, "DeleteDelegation of another serial", s.DeleteDelegation(ctx, "dp:b", dev("F", "2")), store.ErrNotFound)
	got, err := s.Delegated(ctx, "dp:b", []store.DeviceRef{dev("F", "1")})
	must(t, err)
	if !got[0] {
		t.Error("the other proxy's delegation was deleted too")
	}
}

func testListDelegations(t *testing.T, s store.Store) {
	ctx := t.Context()
	all := []store.Delegation{
		deleg("dp:b", "F2", "s", "acct1", at(0)),
		deleg("dp:a", "F1", "s2", "acct1", at(0)),
		deleg("dp:a", "F1", "s1", "acct2", at(0)),
		deleg("dp:a", "E9", "z", "", at(0)),
		deleg("dp:B", "F1", "s", "acct1", at(0)),
	}
	_, err := s.PutDelegations(ctx, all)
	must(t, err)
	sorted := []store.Delegation{all[4], all[3], all[2], all[1], all[0]} // by bytes
	for _, c := range []struct {
		name string
		f    store.DelegationFilter
		want []store.Delegation
	}{
		{"all", store.DelegationFilter{}, sorted},
		{"proxy", store.DelegationFilter{Proxy: "dp:a"}, []store.Delegation{all[3], all[2], all[1]}},
		{"account", store.DelegationFilter{AccountID: "acct1"}, []store.Delegation{all[4], all[1], all[0]}},
		{"fcc", store.DelegationFilter{FCCID: "F1"}, []store.Delegation{all[4], all[2], all[1]}},
		{"proxy and account", store.DelegationFilter{Proxy: "dp:a", AccountID: "acct2"}, []store.Delegation{all[2]}},
		{"limit", store.DelegationFilter{Limit: 2}, sorted[:2]},
		{"none", store.DelegationFilter{Proxy: "dp:none"}, nil},
	} {
		got, err := s.ListDelegations(ctx, c.f)
		must(t, err)
		equal(t, "ListDelegations "+c.name, got, c.want, normDelegations)
	}
}

func testDelegated(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.PutDelegations(ctx, []store.Delegation{
		deleg("dp:F:p", "FCC", "1", "", at(0)),
		deleg("dp:F:p", "FCC", "3", "", at(0)),
		deleg("dp:F:other", "FCC", "2", "", at(0)),
		deleg("dp:F:p", "FCC:1", "x", "", at(0)),
	})
	must(t, err)
	got, err := s.Delegated(ctx, "dp:F:p", nil)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("Delegated(nil) = %v", got)
	}
	devs := []store.DeviceRef{
		dev("FCC", "3"), dev("FCC", "2"), dev("FCC", "1"), dev("FCC", "1"),
		dev("FCC", "1x"), dev("FCC:1", "x"), dev("FCC", "1:x"), dev("fcc", "1"), dev("", ""),
	}
	got, err = s.Delegated(ctx, "dp:F:p", devs)
	must(t, err)
	want := []bool{true, false, true, true, false, true, false, false, false}
	if !slices.Equal(got, want) {
		t.Errorf("Delegated = %v, want %v", got, want)
	}
	got, err = s.Delegated(ctx, "dp:F:none", devs)
	must(t, err)
	if slices.Contains(got, true) {
		t.Errorf("Delegated to a proxy without delegations = %v", got)
	}
}

// The largest batch (512) and beyond, in order.
func testDelegatedMany(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ds []store.Delegation
	devs := make([]store.DeviceRef, 700)
	want := make([]bool, len(devs))
	for i := range devs {
		devs[i] = dev("FCC", fmt.Sprint(i))
		if i%3 == 0 {
			ds = append(ds, deleg("dp:p", "FCC", fmt.Sprint(i), "", at(0)))
			want[i] = true
		}
	}
	_, err := s.PutDelegations(ctx, ds)
	must(t, err)
	for _, n := range []int{512, 700} {
		got, err := s.Delegated(ctx, "dp:p", devs[:n])
		must(t, err)
		if !slices.Equal(got, want[:n]) {
			t.Errorf("Delegated of %d devices differs from the delegations", n)
		}
	}
}

package storetest

import (
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

var certificateTests = []test{
	{"AddList", testCertificateAddList},
	{"AddConflict", testCertificateAddConflict},
	{"Delete", testCertificateDelete},
	{"Isolation", testCertificateIsolation},
}

// sampleCertificate is a certificate of account added at added, with a
// private key (one the server issued).
func sampleCertificate(id, account string, added time.Time) *store.Certificate {
	return &store.Certificate{
		ID:         id,
		AccountID:  account,
		DER:        []byte("\x30\x82der-of-" + id),
		PrivateKey: []byte("encrypted-pkcs8-" + id),
		NotBefore:  added.Add(-time.Hour),
		NotAfter:   added.Add(365 * 24 * time.Hour),
		CreatedAt:  added,
	}
}

func normCertificate(c *store.Certificate) *store.Certificate {
	if c == nil {
		return nil
	}
	n := *c
	n.DER = normBytes(n.DER)
	n.PrivateKey = normBytes(n.PrivateKey)
	n.NotBefore = normTime(n.NotBefore)
	n.NotAfter = normTime(n.NotAfter)
	n.CreatedAt = normTime(n.CreatedAt)
	return &n
}

func normCertificates(cs []*store.Certificate) []*store.Certificate {
	var out []*store.Certificate
	for _, c := range cs {
		out = append(out, normCertificate(c))
	}
	return out
}

func listCertificates(t *testing.T, s store.Store, account string) []*store.Certificate {
	t.Helper()
	cs, err := s.ListCertificates(t.Context(), account)
	must(t, err)
	return cs
}

func testCertificateAddList(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got := listCertificates(t, s, "org"); len(got) != 0 {
		t.Fatalf("ListCertificates on an empty store = %d certificates", len(got))
	}
	c0 := sampleCertificate("thumb-0", "org", at(0))
	c1 := sampleCertificate("thumb-1", "org", at(time.Hour))
	c1.PrivateKey = nil // uploaded
	c2 := sampleCertificate("thumb-2", "org", at(2*time.Hour))
	// Added out of order, listed newest first.
	for _, c := range []*store.Certificate{c1, c2, c0} {
		must(t, s.AddCertificate(ctx, c))
	}
	equal(t, "ListCertificates", listCertificates(t, s, "org"),
		[]*store.Certificate{c2, c1, c0}, normCertificates)
	// The result is the caller's to change.
	got := listCertificates(t, s, "org")
	got[0].DER[0] = 'X'
	got[0].PrivateKey[0] = 'X'
	equal(t, "ListCertificates after changing an earlier result", listCertificates(t, s, "org"),
		[]*store.Certificate{c2, c1, c0}, normCertificates)
}

// testCertificateAddConflict adds a certificate again, to its account and
// to another: the certificate (its ID) exists either way.
func testCertificateAddConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := sampleCertificate("thumb", "org-a", at(0))
	must(t, s.AddCertificate(ctx, c))
	again := sampleCertificate("thumb", "org-a", at(time.Hour))
	again.PrivateKey = nil
	wantErr(t, "AddCertificate of an existing certificate", s.AddCertificate(ctx, again), store.ErrConflict)
	elsewhere := sampleCertificate("thumb", "org-b", at(time.Hour))
	wantErr(t, "AddCertificate of an existing certificate to another account",
		s.AddCertificate(ctx, elsewhere), store.ErrConflict)
	equal(t, "ListCertificates after the conflicts", listCertificates(t, s, "org-a"),
		[]*store.Certificate{c}, normCertificates)
	if got := listCertificates(t, s, "org-b"); len(got) != 0 {
		t.Errorf("the refused certificate was listed for org-b: %+v", got)
	}
}

func testCertificateDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	c0 := sampleCertificate("thumb-0", "org", at(0))
	c1 := sampleCertificate("thumb-1", "org", at(time.Hour))
	must(t, s.AddCertificate(ctx, c0))
	must(t, s.AddCertificate(ctx, c1))
	must(t, s.DeleteCertificate(ctx, "org", "thumb-1"))
	equal(t, "ListCertificates after DeleteCertificate", listCertificates(t, s, "org"),
		[]*store.Certificate{c0}, normCertificates)
	wantErr(t, "DeleteCertificate twice", s.DeleteCertificate(ctx, "org", "thumb-1"), store.ErrNotFound)
	wantErr(t, "DeleteCertificate of an absent certificate", s.DeleteCertificate(ctx, "org", "absent"), store.ErrNotFound)
	// The ID is free again.
	must(t, s.AddCertificate(ctx, sampleCertificate("thumb-1", "org", at(2*time.Hour))))
	must(t, s.DeleteCertificate(ctx, "org", "thumb-0"))
	must(t, s.DeleteCertificate(ctx, "org", "thumb-1"))
	if got := listCertificates(t, s, "org"); len(got) != 0 {
		t.Errorf("ListCertificates after deleting every certificate = %+v", got)
	}
}

// testCertificateIsolation checks that an account neither lists nor
// deletes another account's certificates.
func testCertificateIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	a0 := sampleCertificate("a-0", "org-a", at(0))
	a1 := sampleCertificate("a-1", "org-a", at(2*time.Hour))
	b0 := sampleCertificate("b-0", "org-b", at(time.Hour))
	for _, c := range []*store.Certificate{a0, a1, b0} {
		must(t, s.AddCertificate(ctx, c))
	}
	equal(t, "ListCertificates(org-a)", listCertificates(t, s, "org-a"),
		[]*store.Certificate{a1, a0}, normCertificates)
	equal(t, "ListCertificates(org-b)", listCertificates(t, s, "org-b"),
		[]*store.Certificate{b0}, normCertificates)
	if got := listCertificates(t, s, "org-c"); len(got) != 0 {
		t.Errorf("ListCertificates of an account without certificates = %+v", got)
	}
	wantErr(t, "DeleteCertificate of another account's certificate",
		s.DeleteCertificate(ctx, "org-b", "a-0"), store.ErrNotFound)
	equal(t, "ListCertificates(org-a) after the refused delete", listCertificates(t, s, "org-a"),
		[]*store.Certificate{a1, a0}, normCertificates)
	must(t, s.DeleteCertificate(ctx, "org-b", "b-0"))
	equal(t, "ListCertificates(org-a) after deleting org-b's", listCertificates(t, s, "org-a"),
		[]*store.Certificate{a1, a0}, normCertificates)
}

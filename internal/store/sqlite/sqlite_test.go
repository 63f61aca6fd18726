package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sts.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that what is written survives Close, and that opening
// an up-to-date database migrates nothing.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	path := filepath.Join(dir, "sts.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("parent directory: %v, %v; want mode 0700", fi, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	hash := []byte("0123456789abcdef0123456789abcdef")
	for _, err := range []error{
		s.CreateClient(ctx, &store.Client{ID: "c1", Status: store.ClientActive, Scopes: []string{"read"}, CreatedAt: now}),
		s.RotateKeys(ctx, "", now, time.Time{}, &store.SigningKey{ID: "k1", Algorithm: "EdDSA", State: store.KeyCurrent, CreatedAt: now}),
		s.CreateToken(ctx, &store.TokenRecord{Hash: hash, Kind: store.TokenRefresh, FamilyID: "f", ExpiresAt: now.Add(time.Hour)}),
		s.RevokeJTI(ctx, "j1", now.Add(time.Hour), now),
		s.AppendAudit(ctx, []store.AuditRecord{{Time: now, Action: "client.create", ClientID: "c1"}}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.GetClient(ctx, "c1"); err != nil || !c.CreatedAt.Equal(now) || len(c.Scopes) != 1 {
		t.Errorf("GetClient after reopening = %+v, %v", c, err)
	}
	if ks, err := s.ListKeys(ctx, now); err != nil || len(ks) != 1 || ks[0].ID != "k1" {
		t.Errorf("ListKeys after reopening = %v, %v", ks, err)
	}
	if tr, err := s.GetToken(ctx, hash); err != nil || tr.FamilyID != "f" {
		t.Errorf("GetToken after reopening = %+v, %v", tr, err)
	}
	if r, err := s.IsRevoked(ctx, "j1"); err != nil || !r {
		t.Errorf("IsRevoked after reopening = %v, %v", r, err)
	}
	if rs, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(rs) != 1 {
		t.Errorf("ListAudit after reopening = %v, %v", rs, err)
	}
	var mode string
	if err := s.DB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestOpenRejectsNonFile(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestOpenEscapesPath opens a file whose name holds characters that mean
// something in a file: URI.
func TestOpenEscapesPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c#d%20e")
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RevokeJTI(t.Context(), "j", time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sts.db")); err != nil {
		t.Fatalf("the database is not where it was asked to be: %v", err)
	}
}

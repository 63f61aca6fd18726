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

// TestOpenSettings checks what Open sets up that the shared suites do not
// see: the parent directories (mode 0700) and WAL. Reopening is
// TestMigrations/Reopen.
func TestOpenSettings(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "nested", "dir")
	s, err := sqlite.Open(ctx, filepath.Join(dir, "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("parent directory: %v, %v; want mode 0700", fi, err)
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

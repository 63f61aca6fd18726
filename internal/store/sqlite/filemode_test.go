package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
)

// TestFileModes: the database, WAL and SHM files are 0600 whatever the
// directory's mode and the umask (issue 8, finding 9), and a file an older
// version left 0644 is narrowed.
func TestFileModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, pre := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "sts.db")
		if pre {
			// As an earlier version left it.
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		// A write, so that the WAL and SHM files exist.
		if err := s.RevokeJTI(t.Context(), "j", time.Now().Add(time.Hour), time.Now()); err != nil {
			t.Fatal(err)
		}
		var _ store.Store = s
		for _, name := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(name)
			if err != nil {
				t.Fatalf("pre-existing %v: %v", pre, err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("pre-existing %v: %s has mode %#o, want 0600", pre, filepath.Base(name), m)
			}
		}
		s.Close()
	}
}

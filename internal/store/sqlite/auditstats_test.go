package sqlite_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/store/storetest"
)

// TestAuditStatsCost measures the dashboard's aggregate query on a table
// of $STS_TEST_AUDIT_ROWS records (storetest.AuditStatsCost).
func TestAuditStatsCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(storetest.AuditRowsEnv))
	if n <= 0 {
		t.Skipf("set %s (such as 1000000) to measure the dashboard's query on that many audit records", storetest.AuditRowsEnv)
	}
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.AuditStatsCost(t, s, n, 10*time.Second, func(n int, start, step int64) error {
		_, err := s.DB().ExecContext(t.Context(), `INSERT INTO audit
		(time, action, decision, client_id, subject, actor, jti, error, detail, request_id, remote)
		WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < ? - 1)
		SELECT ? + i * ?, 'token.exchange', CASE WHEN i % 50 = 0 THEN 'refused' ELSE 'granted' END,
		'client-' || (i % 20), 'alice', '', 'jti-' || i, CASE WHEN i % 50 = 0 THEN 'invalid_grant' ELSE '' END,
		'', '', '192.0.2.1:4711' FROM seq`, n, start, step)
		return err
	})
}

package postgres_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store/storetest"
)

// TestAuditStatsCost measures the dashboard's aggregate query on a table
// of $STS_TEST_AUDIT_ROWS records (storetest.AuditStatsCost).
func TestAuditStatsCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(storetest.AuditRowsEnv))
	if n <= 0 {
		t.Skipf("set %s (such as 1000000) to measure the dashboard's query on that many audit records", storetest.AuditRowsEnv)
	}
	s := open(t, newSchema(t))
	defer s.Close()
	storetest.AuditStatsCost(t, s, n, 10*time.Second, func(n int, start, step int64) error {
		_, err := s.Pool().Exec(t.Context(), `INSERT INTO audit
		(time, action, decision, client_id, subject, actor, jti, error, detail, request_id, remote)
		SELECT $2::bigint + i * $3::bigint, 'token.exchange', CASE WHEN i % 50 = 0 THEN 'refused' ELSE 'granted' END,
		'client-' || (i % 20), 'alice', '', 'jti-' || i, CASE WHEN i % 50 = 0 THEN 'invalid_grant' ELSE '' END,
		'', '', '192.0.2.1:4711' FROM generate_series(0, $1::bigint - 1) AS i`, n, start, step)
		if err == nil {
			_, err = s.Pool().Exec(t.Context(), `ANALYZE audit`)
		}
		return err
	})
}

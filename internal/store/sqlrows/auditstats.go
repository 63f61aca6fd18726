package sqlrows

import (
	"strconv"
	"strings"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlcodec"
)

// AuditStats returns the three aggregate queries of store.AuditStats and
// their arguments: decisions by time bucket, refusals by error code, and
// decisions by client. Each reads the records of q's window through the
// audit_time index (a range scan of time) and aggregates them in one
// pass; the sums are of count, so that a coalesced record counts every
// refusal it stands for. Reasons or clients is "" when q asks for none.
func (q *Queries) AuditStats(s store.AuditStatsQuery) (buckets, reasons, clients string, args []any) {
	var b strings.Builder
	args = []any{sqlcodec.EncTime(s.Since), sqlcodec.EncTime(s.Until)}
	b.WriteString(`time >= ? AND time < ? AND action IN (`)
	for i, a := range s.Actions {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("?")
		args = append(args, a)
	}
	b.WriteString(`)`)
	where := b.String()
	const sums = `SUM(CASE WHEN decision = 'granted' THEN count ELSE 0 END),
	SUM(CASE WHEN decision = 'granted' THEN 0 ELSE count END)`
	// The bucket width, in microseconds as times are stored, is an
	// integer the store computes, written into the text so that both
	// backends divide integers.
	width := strconv.FormatInt(s.Bucket.Microseconds(), 10)
	buckets = `SELECT time / ` + width + ` AS bucket, ` + sums + `
	FROM audit WHERE ` + where + ` GROUP BY bucket ORDER BY bucket`
	if s.TopReasons > 0 {
		reasons = `SELECT error, 0, SUM(count), SUM(count) AS n FROM audit WHERE ` + where + `
		AND decision = 'refused' GROUP BY error ORDER BY n DESC, error LIMIT ` + strconv.Itoa(s.TopReasons)
	}
	if s.TopClients > 0 {
		clients = `SELECT client_id, ` + sums + `, SUM(count) AS n FROM audit WHERE ` + where + `
		GROUP BY client_id ORDER BY n DESC, client_id LIMIT ` + strconv.Itoa(s.TopClients)
	}
	if q.numbered {
		buckets, reasons, clients = Numbered(buckets), Numbered(reasons), Numbered(clients)
	}
	return buckets, reasons, clients, args
}

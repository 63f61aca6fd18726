package devices

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Bounds of an import: a fleet's file, not a way to fill the database.
const (
	MaxImportSize = 8 << 20
	MaxImportRows = 100000
	// MaxImportProblems is the most bad rows an ImportError lists; the
	// rest are counted.
	MaxImportProblems = 100
)

// RowProblem is one bad row of an import, by its line in the file.
type RowProblem struct {
	Line int
	Msg  string
}

// ImportError lists the bad rows of an import (nothing was written).
type ImportError struct {
	Rows []RowProblem
	// More is how many bad rows are not listed.
	More int
	// Fatal, if not empty, stopped the reading (too large, not CSV).
	Fatal string
}

func (e *ImportError) Error() string {
	var b strings.Builder
	b.WriteString("nothing imported:")
	if e.Fatal != "" {
		b.WriteString(" " + e.Fatal + ";")
	}
	for _, r := range e.Rows {
		fmt.Fprintf(&b, " line %d: %s;", r.Line, r.Msg)
	}
	if e.More > 0 {
		fmt.Fprintf(&b, " and %d more bad rows;", e.More)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Imported is what ImportCSV did.
type Imported struct {
	// Rows is the number of devices read (the header and blank lines
	// aside); Added how many delegations were new; Existing how many were
	// there already (or repeated in the file).
	Rows, Added, Existing int
}

// ImportCSV reads rows of "fcc_id,serial" (an optional header row naming
// the columns; blank lines ignored; fields trimmed) and delegates each
// device to proxy for the account, in one transaction. At most
// MaxImportSize bytes and MaxImportRows rows; if any row is bad, every
// bad row is reported with its line (ImportError) and nothing is written.
// Audited once as device.import.
func (s *Service) ImportCSV(ctx context.Context, by, accountID, proxy string, r io.Reader) (Imported, error) {
	var out Imported
	proxy, err := CanonicalProxy(proxy)
	if err != nil {
		return out, Problems{{Field: "proxy", Msg: err.Error()}}
	}
	if accountID == "" {
		return out, Problems{{Field: "account", Msg: "is required"}}
	}
	if err := s.checkAccount(ctx, accountID); err != nil {
		return out, err
	}
	lr := &io.LimitedReader{R: r, N: MaxImportSize + 1}
	cr := csv.NewReader(lr)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	var (
		ie    ImportError
		bad   int
		ds    []store.Delegation
		first = true
		now   = s.now().UTC().Truncate(time.Microsecond)
	)
	fail := func(line int, format string, args ...any) {
		bad++
		if len(ie.Rows) < MaxImportProblems {
			ie.Rows = append(ie.Rows, RowProblem{Line: line, Msg: fmt.Sprintf(format, args...)})
		} else {
			ie.More++
		}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if lr.N <= 0 {
			ie.Fatal = fmt.Sprintf("the file is larger than %d bytes", MaxImportSize)
			return out, &ie
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				fail(pe.StartLine, "%v", pe.Err)
				ie.Fatal = fmt.Sprintf("not CSV past line %d", pe.StartLine)
			} else {
				ie.Fatal = err.Error()
			}
			return out, &ie
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if first {
			first = false
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if isHeader(rec) {
				continue
			}
		}
		if len(rec) != 2 {
			fail(line, "want 2 fields (fcc_id,serial), got %d", len(rec))
			continue
		}
		out.Rows++
		if out.Rows > MaxImportRows {
			ie.Fatal = fmt.Sprintf("more than %d rows", MaxImportRows)
			return Imported{}, &ie
		}
		d := store.DeviceRef{FCCID: strings.TrimSpace(rec[0]), Serial: strings.TrimSpace(rec[1])}
		if err := CheckFCCID(d.FCCID); err != nil {
			fail(line, "%v", err)
			continue
		}
		if err := CheckSerial(d.Serial); err != nil {
			fail(line, "%v", err)
			continue
		}
		ds = append(ds, store.Delegation{Proxy: proxy, DeviceRef: d, AccountID: accountID, CreatedAt: now})
	}
	if lr.N <= 0 {
		ie.Fatal = fmt.Sprintf("the file is larger than %d bytes", MaxImportSize)
		return Imported{}, &ie
	}
	if bad > 0 {
		return Imported{}, &ie
	}
	if out.Rows == 0 {
		return out, Problems{{Field: "file", Msg: "holds no device"}}
	}
	n, err := s.Store.PutDelegations(ctx, ds)
	if err != nil {
		return Imported{}, err
	}
	out.Added, out.Existing = n, out.Rows-n
	return out, s.record(ctx, by, "device.import", accountID,
		fmt.Sprintf("proxy %s; %d devices, %d new", proxy, out.Rows, out.Added))
}

// isHeader reports whether rec names the columns rather than a device.
func isHeader(rec []string) bool {
	if len(rec) != 2 {
		return false
	}
	a := strings.ToLower(strings.TrimSpace(rec[0]))
	b := strings.ToLower(strings.TrimSpace(rec[1]))
	return (a == "fcc_id" || a == "fccid" || a == "fcc id") &&
		(b == "serial" || b == "cbsdserialnumber" || b == "serial_number" || b == "serial number")
}

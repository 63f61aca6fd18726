package sqlrows

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

func TestNumbered(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"SELECT 1":                  "SELECT 1",
		"a = ?":                     "a = $1",
		"VALUES (?, ?, ?) WHERE ?x": "VALUES ($1, $2, $3) WHERE $4x",
	} {
		if got := Numbered(in); got != want {
			t.Errorf("Numbered(%q) = %q, want %q", in, got, want)
		}
	}
}

// queryTexts returns the exported query texts of q by field name.
func queryTexts(q *Queries) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(q).Elem()
	for i := range v.NumField() {
		if f := v.Type().Field(i); f.IsExported() {
			out[f.Name] = v.Field(i).String()
		}
	}
	return out
}

func TestDialects(t *testing.T) {
	lite, pg := queryTexts(NewQueries(SQLite)), queryTexts(NewQueries(PostgreSQL))
	for name, l := range lite {
		p := pg[name]
		if l == "" || strings.Contains(l, "$") {
			t.Errorf("SQLite %s = %q", name, l)
		}
		if strings.Contains(p, "?") {
			t.Errorf("PostgreSQL %s = %q has a ?", name, p)
		}
		// Apart from placeholders the dialects differ only in collations.
		if got := strings.ReplaceAll(p, ` COLLATE "C"`, ""); got != Numbered(l) {
			t.Errorf("%s:\nSQLite     %q\nPostgreSQL %q", name, l, p)
		}
	}
	if pg["ListClients"] == lite["ListClients"] || !strings.HasSuffix(pg["ListClients"], `id COLLATE "C"`) {
		t.Errorf("PostgreSQL ListClients = %q, want ids in byte order", pg["ListClients"])
	}
}

// TestValues checks that each Values function gives one value per column
// and placeholder of its insert.
func TestValues(t *testing.T) {
	q := NewQueries(SQLite)
	for _, c := range []struct {
		cols, insert string
		values       []any
	}{
		{ClientCols, q.InsertClient, ClientValues(&store.Client{})},
		{AccountCols, q.InsertAccount, AccountValues(&store.Account{})},
		{TokenCols, q.InsertToken, TokenValues(&store.TokenRecord{})},
		{KeyCols, q.InsertKey, KeyValues(&store.SigningKey{})},
		{OperatorCols, q.InsertOperator, OperatorValues(&store.Operator{})},
		{CertCols, q.InsertCertificate, CertificateValues(&store.Certificate{})},
		{SessionCols, q.InsertSession, SessionValues(&store.Session{})},
		{strings.TrimPrefix(AuditCols, "id, "), q.InsertAudit, AuditValues(&store.AuditRecord{})},
	} {
		cols := strings.Count(c.cols, ",") + 1
		if n := strings.Count(c.insert, "?"); n != cols || len(c.values) != cols {
			t.Errorf("%s: %d columns, %d placeholders, %d values", c.insert, cols, n, len(c.values))
		}
	}
}

func TestListAudit(t *testing.T) {
	f := store.AuditFilter{ClientID: "c", Action: "token", Since: time.Unix(10, 0)}
	lq, largs := NewQueries(SQLite).ListAudit(f)
	pq, pargs := NewQueries(PostgreSQL).ListAudit(f)
	if pq != Numbered(lq) || !reflect.DeepEqual(largs, pargs) {
		t.Errorf("ListAudit:\nSQLite     %q %v\nPostgreSQL %q %v", lq, largs, pq, pargs)
	}
	if want := []any{"c", "token", 6, "token.", int64(10_000_000), DefaultAuditLimit}; !reflect.DeepEqual(largs, want) {
		t.Errorf("ListAudit arguments = %v, want %v", largs, want)
	}
}

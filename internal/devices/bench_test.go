package devices_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/devices"
	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlite"
	"github.com/keybridge/sts/internal/ststest"
)

// benchStores returns SQLite and, when STS_TEST_DATABASE_URL is set,
// PostgreSQL stores holding n delegations of one proxy (and as many of
// another), for the batch endpoint's lookup.
func benchStores(b *testing.B, n int) map[string]store.Store {
	out := map[string]store.Store{}
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sts.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	out["sqlite"] = st
	if os.Getenv(ststest.EnvDatabaseURL) != "" {
		out["postgres"] = ststest.OpenPostgres(b, ststest.PostgresSchema(b))
	}
	for _, s := range out {
		ds := make([]store.Delegation, 0, 2*n)
		for i := range n {
			for _, p := range []string{"dp:F:a", "dp:F:b"} {
				ds = append(ds, store.Delegation{Proxy: p, DeviceRef: store.DeviceRef{FCCID: "FCC" + fmt.Sprint(i%13), Serial: fmt.Sprintf("SN-%07d", i)}, CreatedAt: time.Now()})
			}
		}
		if _, err := s.PutDelegations(context.Background(), ds); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkDelegated: one query for a batch of devices against one query
// per device (what a batch of single exchanges costs the database).
func BenchmarkDelegated(b *testing.B) {
	ctx := context.Background()
	for name, s := range benchStores(b, 50000) {
		for _, size := range []int{100, 512} {
			devs := make([]store.DeviceRef, size)
			for i := range devs {
				devs[i] = store.DeviceRef{FCCID: "FCC" + fmt.Sprint((i*97)%13), Serial: fmt.Sprintf("SN-%07d", i*97)}
			}
			b.Run(fmt.Sprintf("%s/batch%d", name, size), func(b *testing.B) {
				for b.Loop() {
					if _, err := s.Delegated(ctx, "dp:F:a", devs); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("%s/single%d", name, size), func(b *testing.B) {
				for b.Loop() {
					for _, d := range devs {
						if _, err := s.Delegated(ctx, "dp:F:a", []store.DeviceRef{d}); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

// BenchmarkImportCSV: the largest import (100,000 rows) in one
// transaction.
func BenchmarkImportCSV(b *testing.B) {
	var csv []byte
	for i := range devices.MaxImportRows {
		csv = fmt.Appendf(csv, "FCC%d,SN-%07d\n", i%13, i)
	}
	for name, s := range benchStores(b, 0) {
		if a, ok := s.(store.Accounts); ok {
			now := time.Now()
			if err := a.CreateAccount(context.Background(), &store.Account{ID: "acct", Name: "Fleet", Kind: store.AccountOrganization, Status: store.AccountActive, CreatedAt: now, UpdatedAt: now}); err != nil {
				b.Fatal(err)
			}
		}
		svc := &devices.Service{Store: s}
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				n++
				got, err := svc.ImportCSV(context.Background(), "bench", "acct", fmt.Sprintf("dp:F:p%d", n), bytes.NewReader(csv))
				if err != nil || got.Added != devices.MaxImportRows {
					b.Fatal(got, err)
				}
			}
		})
	}
}

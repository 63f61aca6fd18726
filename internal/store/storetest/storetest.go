package storetest

import (
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Run runs the conformance suite against the backend newStore creates.
// newStore is called once per subtest and must return an empty store; Run
// closes it when the subtest ends. Subtests run one after another, so a
// backend may hand out the same database each time once it has emptied it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Clients", clientTests},
		{"Keys", keyTests},
		{"Tokens", tokenTests},
		{"Revocations", revocationTests},
		{"Audit", auditTests},
		{"AuditStats", auditStatsTests},
		{"Accounts", accountTests},
		{"Certificates", certificateTests},
		{"UsedJTIs", usedJTITests},
		{"Operators", operatorTests},
		{"Sessions", sessionTests},
		{"Settings", settingTests},
		{"Issuers", issuerTests},
		{"Devices", deviceTests},
		{"Seed", seedTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newStore(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.fn(t, s)
				})
			}
		})
	}
}

// test is one subtest, given a fresh store.
type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// concurrency is how many goroutines race in the compare-and-swap tests.
const concurrency = 16

// base is the suite's reference time. It has a sub-microsecond part, which
// backends may drop: times are compared to the microsecond.
var base = time.Date(2030, time.March, 4, 5, 6, 7, 123456789, time.UTC)

// at returns base+d.
func at(d time.Duration) time.Time { return base.Add(d) }

// normTime truncates to the microsecond, in UTC, keeping the zero time.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// sameTime reports whether a and b are the same instant to the microsecond.
func sameTime(a, b time.Time) bool { return normTime(a).Equal(normTime(b)) }

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// hash returns the SHA-256 of name, standing for a token's hash.
func hash(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

// equal compares two records after norm, reporting both on a mismatch.
func equal[T any](t *testing.T, what string, got, want T, norm func(T) T) {
	t.Helper()
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// countErrs tallies the errors returned by racing goroutines: how many
// succeeded, how many failed with target, and any other error.
func countErrs(errs []error, target error) (ok, matched int, other error) {
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, target):
			matched++
		default:
			other = err
		}
	}
	return ok, matched, other
}

package sqlrows

import (
	"fmt"
	"time"

	"github.com/keybridge/sts/internal/store"
)

// Updatable describes a record changed by an updater function (UpdateClient,
// UpdateAccount, UpdateOperator), so that both backends run one
// read-modify-write for all three.
type Updatable[T any] struct {
	// What names the record in errors: "client", "account", "operator".
	What string
	// Scan reads a row of the record's columns.
	Scan func(Scanner) (*T, error)
	// Key is the record's primary key, which an update must not change.
	Key func(*T) string
	// Values are the columns after the key, in update order.
	Values func(*T) []any
	// Stamp sets UpdatedAt.
	Stamp func(*T, time.Time)
}

// Apply runs update on v (read under the caller's transaction), refuses a
// change of key, and stamps UpdatedAt with now to the microsecond, so that
// the result equals what a later read returns.
func (u Updatable[T]) Apply(v *T, key string, now time.Time, update func(*T) error) error {
	if err := update(v); err != nil {
		return err
	}
	if got := u.Key(v); got != key {
		return fmt.Errorf("update changed the %s key to %q", u.What, got)
	}
	u.Stamp(v, now.UTC().Truncate(time.Microsecond))
	return nil
}

// The updatable records.
var (
	ClientRows = Updatable[store.Client]{
		What: "client", Scan: ScanClient, Values: ClientValues,
		Key:   func(c *store.Client) string { return c.ID },
		Stamp: func(c *store.Client, t time.Time) { c.UpdatedAt = t },
	}
	AccountRows = Updatable[store.Account]{
		What: "account", Scan: ScanAccount, Values: AccountValues,
		Key:   func(a *store.Account) string { return a.ID },
		Stamp: func(a *store.Account, t time.Time) { a.UpdatedAt = t },
	}
	OperatorRows = Updatable[store.Operator]{
		What: "operator", Scan: ScanOperator, Values: OperatorValues,
		Key:   func(o *store.Operator) string { return o.Username },
		Stamp: func(o *store.Operator, t time.Time) { o.UpdatedAt = t },
	}
	IssuerRows = Updatable[store.TrustedIssuer]{
		What: "trusted issuer", Scan: ScanIssuer, Values: IssuerValues,
		Key:   func(i *store.TrustedIssuer) string { return i.Name },
		Stamp: func(i *store.TrustedIssuer, t time.Time) { i.UpdatedAt = t },
	}
	DeviceProfileRows = Updatable[store.DeviceProfile]{
		What: "device profile", Scan: ScanDeviceProfile, Values: DeviceProfileValues,
		Key:   func(p *store.DeviceProfile) string { return p.Name },
		Stamp: func(p *store.DeviceProfile, t time.Time) { p.UpdatedAt = t },
	}
)

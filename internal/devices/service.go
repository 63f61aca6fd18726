// Package devices manages device trust profiles and domain proxies'
// delegations (issue 14): the operator's commands, the configuration
// file's profiles (read-only elsewhere), the portal, and the compiled
// trust the token endpoint verifies device certificates with.
package devices

import (
	"context"
	"time"

	"github.com/keybridge/sts/internal/audit"
	"github.com/keybridge/sts/internal/devicecert"
	"github.com/keybridge/sts/internal/store"
)

// Service manages profiles and delegations and keeps the compiled trust
// current (recompiled after any change, by this process or, through the
// change feed, another).
type Service struct {
	Store store.Devices
	Audit *audit.Writer
	Now   func() time.Time
}

// Trust returns the compiled enabled profiles.
func (s *Service) Trust(ctx context.Context) (*devicecert.Trust, error) {
	panic("todo")
}

// Delegated reports, for each device in order, whether proxy may speak
// for it.
func (s *Service) Delegated(ctx context.Context, proxy string, devs []store.DeviceRef) ([]bool, error) {
	return s.Store.Delegated(ctx, proxy, devs)
}

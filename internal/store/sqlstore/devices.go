package sqlstore

import (
	"context"
	"errors"

	"github.com/keybridge/sts/internal/store"
)

// errTODO marks the skeleton of issue 14's storage, replaced by the
// implementation.
var errTODO = errors.New("sqlstore: devices not implemented yet")

// CreateDeviceProfile implements [store.Devices].
func (s *Store) CreateDeviceProfile(ctx context.Context, p *store.DeviceProfile) error {
	return errTODO
}

// GetDeviceProfile implements [store.Devices].
func (s *Store) GetDeviceProfile(ctx context.Context, name string) (*store.DeviceProfile, error) {
	return nil, store.ErrNotFound
}

// ListDeviceProfiles implements [store.Devices].
func (s *Store) ListDeviceProfiles(ctx context.Context) ([]*store.DeviceProfile, error) {
	return nil, nil
}

// UpdateDeviceProfile implements [store.Devices].
func (s *Store) UpdateDeviceProfile(ctx context.Context, name string, update func(*store.DeviceProfile) error) (*store.DeviceProfile, error) {
	return nil, store.ErrNotFound
}

// DeleteDeviceProfile implements [store.Devices].
func (s *Store) DeleteDeviceProfile(ctx context.Context, name string) error {
	return store.ErrNotFound
}

// PutDelegations implements [store.Devices].
func (s *Store) PutDelegations(ctx context.Context, ds []store.Delegation) (int, error) {
	return 0, errTODO
}

// DeleteDelegation implements [store.Devices].
func (s *Store) DeleteDelegation(ctx context.Context, proxy string, dev store.DeviceRef) error {
	return store.ErrNotFound
}

// ListDelegations implements [store.Devices].
func (s *Store) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	return nil, nil
}

// Delegated implements [store.Devices].
func (s *Store) Delegated(ctx context.Context, proxy string, devs []store.DeviceRef) ([]bool, error) {
	return make([]bool, len(devs)), nil
}

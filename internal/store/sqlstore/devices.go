package sqlstore

import (
	"context"
	"errors"

	"github.com/keybridge/sts/internal/store"
	"github.com/keybridge/sts/internal/store/sqlrows"
)

// Every write of a device trust profile is announced (store.ChangeDevice)
// so that each instance recompiles its device trust at once. Delegations
// are not cached (Delegated reads the table), so their writes are not.

// CreateDeviceProfile implements [store.Devices].
func (s *Store) CreateDeviceProfile(ctx context.Context, p *store.DeviceProfile) error {
	err := s.announced(ctx, store.ChangeDevice, p.Name, func(e Executor) error {
		_, err := e.Exec(ctx, s.q.InsertDeviceProfile, sqlrows.DeviceProfileValues(p)...)
		return s.mapErr(err)
	})
	if err != nil {
		return s.errorf("create device profile %q: %w", p.Name, err)
	}
	return nil
}

// GetDeviceProfile implements [store.Devices].
func (s *Store) GetDeviceProfile(ctx context.Context, name string) (*store.DeviceProfile, error) {
	p, err := sqlrows.ScanDeviceProfile(s.r.QueryRow(ctx, s.q.GetDeviceProfile, name))
	if err != nil {
		return nil, s.errorf("get device profile %q: %w", name, s.mapErr(err))
	}
	return p, nil
}

// ListDeviceProfiles implements [store.Devices]; names are ordered by
// their bytes.
func (s *Store) ListDeviceProfiles(ctx context.Context) ([]*store.DeviceProfile, error) {
	out, err := collect(ctx, s.r, sqlrows.ScanDeviceProfile, s.q.ListDeviceProfiles)
	if err != nil {
		return nil, s.errorf("list device profiles: %w", err)
	}
	return out, nil
}

// UpdateDeviceProfile implements [store.Devices] like UpdateIssuer.
func (s *Store) UpdateDeviceProfile(ctx context.Context, name string, update func(*store.DeviceProfile) error) (*store.DeviceProfile, error) {
	return updateRow(ctx, s, sqlrows.DeviceProfileRows, s.getDeviceProfileForUpdate, s.q.UpdateDeviceProfile, name, store.ChangeDevice, update)
}

// DeleteDeviceProfile implements [store.Devices], and announces the change.
func (s *Store) DeleteDeviceProfile(ctx context.Context, name string) error {
	err := s.announced(ctx, store.ChangeDevice, name, func(e Executor) error {
		n, err := e.Exec(ctx, s.q.DeleteDeviceProfile, name)
		if err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return s.errorf("delete device profile %q: %w", name, err)
	}
	return nil
}

// PutDelegations implements [store.Devices]: one transaction of
// multi-row inserts of up to sqlrows.DelegationChunk rows each.
func (s *Store) PutDelegations(ctx context.Context, ds []store.Delegation) (int, error) {
	if len(ds) == 0 {
		return 0, nil
	}
	var added int
	err := s.inTx(ctx, func(tx Executor) error {
		added = 0
		for len(ds) > 0 {
			n := min(len(ds), sqlrows.DelegationChunk)
			q, args := s.q.InsertDelegations(ds[:n])
			c, err := tx.Exec(ctx, q, args...)
			if err != nil {
				return s.mapErr(err)
			}
			added += int(c)
			ds = ds[n:]
		}
		return nil
	})
	if err != nil {
		return 0, s.errorf("put delegations: %w", err)
	}
	return added, nil
}

// DeleteDelegation implements [store.Devices].
func (s *Store) DeleteDelegation(ctx context.Context, proxy string, dev store.DeviceRef) error {
	n, err := s.w.Exec(ctx, s.q.DeleteDelegation, proxy, dev.FCCID, dev.Serial)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return s.errorf("delete delegation of %s/%s to %q: %w", dev.FCCID, dev.Serial, proxy, err)
	}
	return nil
}

// ListDelegations implements [store.Devices].
func (s *Store) ListDelegations(ctx context.Context, f store.DelegationFilter) ([]store.Delegation, error) {
	q, args := s.q.ListDelegations(f)
	out, err := collect(ctx, s.r, sqlrows.ScanDelegation, q, args...)
	if err != nil {
		return nil, s.errorf("list delegations: %w", err)
	}
	return out, nil
}

// maxDelegatedQuery is the most devices one Delegated query asks about: a
// batch's limit (never above 512) fits in one.
const maxDelegatedQuery = 512

// Delegated implements [store.Devices]: one query per 512 devices.
func (s *Store) Delegated(ctx context.Context, proxy string, devs []store.DeviceRef) ([]bool, error) {
	out := make([]bool, len(devs))
	for start := 0; start < len(devs); start += maxDelegatedQuery {
		part := devs[start:min(len(devs), start+maxDelegatedQuery)]
		q, args := s.q.Delegated(proxy, part)
		err := s.r.Query(ctx, q, args, func(r Row) error {
			var i int64
			if err := r.Scan(&i); err != nil {
				return err
			}
			if i < 0 || int(i) >= len(part) {
				return errors.New("delegated: index out of range")
			}
			out[start+int(i)] = true
			return nil
		})
		if err != nil {
			return nil, s.errorf("delegated to %q: %w", proxy, err)
		}
	}
	return out, nil
}

package dpop

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrReplayCacheFull is returned by a MemoryReplay holding its maximum of
// unexpired entries: the proof can be neither accepted (it might be a
// replay later) nor remembered.
var ErrReplayCacheFull = errors.New("dpop: replay cache is full")

// MemoryReplay is a ReplayCache in memory for one process, bounded to a
// maximum number of entries. Entries leave when they expire.
type MemoryReplay struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time
	now   func() time.Time
	sweep time.Time
}

// NewMemoryReplay returns a cache of at most max entries (zero means 100000).
func NewMemoryReplay(max int) *MemoryReplay {
	if max <= 0 {
		max = 100000
	}
	return &MemoryReplay{max: max, seen: make(map[string]time.Time), now: time.Now}
}

// Seen records jti until exp and reports whether it was recorded before.
func (m *MemoryReplay) Seen(_ context.Context, jti string, exp time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e, ok := m.seen[jti]; ok && e.After(now) {
		return true, nil
	}
	if len(m.seen) >= m.max || now.Sub(m.sweep) > time.Minute {
		m.sweep = now
		for k, e := range m.seen {
			if !e.After(now) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= m.max {
			return false, ErrReplayCacheFull
		}
	}
	m.seen[jti] = exp
	return false, nil
}

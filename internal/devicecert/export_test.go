package devicecert

import "time"

// DisablePathCache makes p verify every chain afresh (benchmarks).
func DisablePathCache(p *Profile) { p.noPathCache = true }

// SetWallClock makes p's CRL reloads read clock instead of time.Now.
func SetWallClock(p *Profile, clock func() time.Time) { p.wallClock = clock }

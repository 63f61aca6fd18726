package devicecert

// DisablePathCache makes p verify every chain afresh (benchmarks).
func DisablePathCache(p *Profile) { p.noPathCache = true }

package portal

import "time"

// SaturateHashGate takes every slot of p's hash gate and fills its waiting
// room, as a burst of sign-ins would, until release is called.
func SaturateHashGate(p *Portal) (release func()) {
	n := cap(p.gate.slots)
	for range n {
		p.gate.slots <- struct{}{}
	}
	p.gate.waiting.Add(p.gate.maxWaiting)
	return func() {
		p.gate.waiting.Add(-p.gate.maxWaiting)
		for range n {
			p.gate.leave()
		}
	}
}

// SetStatsTimeout sets how long p's dashboard lets the store count.
func SetStatsTimeout(p *Portal, d time.Duration) { p.statsTimeout = d }

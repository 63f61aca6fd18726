package metrics

import (
	"math"
	"sync/atomic"
	"time"
)

// The recent-latency window of TokenLatency: windowSlots slots of
// slotSeconds each, every slot a histogram of windowBuckets logarithmic
// buckets (each about 10% wider than the one before) from bucketMin up.
const (
	windowSlots   = 5
	slotSeconds   = 60
	windowBuckets = 160
	bucketMin     = 10 * time.Microsecond
	bucketGrowth  = 1.1
)

var logGrowth = math.Log(bucketGrowth)

// window counts latencies per minute for the last windowSlots minutes.
// Writers only add atomically; a slot is reset by the first writer of a
// new minute (a few counts of the turn of a minute may land in the old
// one: it is a dashboard's estimate, not an accounting).
type window struct {
	slots [windowSlots]slot
}

type slot struct {
	minute atomic.Int64 // the Unix minute the counts are of
	counts [windowBuckets]atomic.Uint64
}

func bucketOf(d time.Duration) int {
	if d <= bucketMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(bucketMin))/logGrowth) + 1
	return min(i, windowBuckets-1)
}

// bucketUpper is the upper bound of bucket i.
func bucketUpper(i int) time.Duration {
	return time.Duration(float64(bucketMin) * math.Pow(bucketGrowth, float64(i)))
}

func (w *window) observe(now time.Time, d time.Duration) {
	min := now.Unix() / slotSeconds
	s := &w.slots[min%windowSlots]
	if old := s.minute.Load(); old != min {
		if s.minute.CompareAndSwap(old, min) {
			for i := range s.counts {
				s.counts[i].Store(0)
			}
		}
	}
	s.counts[bucketOf(d)].Add(1)
}

func (w *window) quantiles(now time.Time) (p50, p99 time.Duration, n uint64) {
	cur := now.Unix() / slotSeconds
	var sum [windowBuckets]uint64
	for i := range w.slots {
		s := &w.slots[i]
		if m := s.minute.Load(); m <= cur-windowSlots || m > cur {
			continue // stale
		}
		for j := range s.counts {
			c := s.counts[j].Load()
			sum[j] += c
			n += c
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	at := func(q float64) time.Duration {
		rank := uint64(math.Ceil(q * float64(n)))
		var acc uint64
		for j, c := range sum {
			acc += c
			if acc >= rank {
				return bucketUpper(j)
			}
		}
		return bucketUpper(windowBuckets - 1)
	}
	return at(0.5), at(0.99), n
}

// Package guard measures each deployment's traffic per pool and per flag
// cohort and decides when a pool or a cohort has gone bad. It is pure logic:
// the request path records into a Meter with atomic adds only; Compile turns
// a deployment's guard block into a Policy (with every default); Judge reads
// the windows, active health, retention and cooldown at a given time and
// returns the View the admin API serves and the Action to write. Writing it
// (a new version) is the caller's job.
//
// Of this module guard imports gateway only, and it links neither Caddy nor
// etcd, its tests included (internal/boundaries pins this): its rules are
// table tests with an injected clock.
package guard

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Slots is the number of slots a window is cut into. The evaluator advances
// one slot per Window/Slots, so with the default 10 s window a slot is 250 ms
// and a breach is seen within one slot of enough samples arriving.
const Slots = 40

// Latency histogram: 4 buckets per power of two of microseconds (about 19%
// wide), from 1 µs to 2^28 µs (4.5 min); slower goes in the last bucket.
const (
	subBuckets = 4
	octaves    = 28
	numBuckets = octaves * subBuckets
)

// Series is one population's sliding window (a pool, or a flag cohort),
// and its running totals for metrics.
type Series struct {
	slots [Slots]slot

	// folded holds what left the window: each slot's counts are added here
	// when the evaluator clears it, so totals cost the request path nothing.
	// Only the evaluator writes it; readers take the registry's lock.
	folded      [numBuckets]uint64
	foldedError uint64
}

// slot counts one period. The request count is the histogram's total, so a
// successful request costs a single atomic add.
type slot struct {
	errors atomic.Uint64
	hist   [numBuckets]atomic.Uint32
}

// add counts one request in slot i, latency bucket b: one atomic add, two
// when it failed.
func (s *Series) add(i uint32, b int, failed bool) {
	sl := &s.slots[i]
	if failed {
		sl.errors.Add(1)
	}
	sl.hist[b].Add(1)
}

// clear empties slot i, folding its counts into the totals first.
func (s *Series) clear(i uint32) {
	sl := &s.slots[i]
	s.foldedError += sl.errors.Swap(0)
	for b := range sl.hist {
		s.folded[b] += uint64(sl.hist[b].Swap(0))
	}
}

// latencyBucket maps a latency to its histogram bucket: the octave of its
// microseconds and the next two bits below the leading one.
func latencyBucket(d time.Duration) int {
	us := uint64(d / time.Microsecond)
	if us < 1 {
		return 0
	}
	oct := bits.Len64(us) - 1 // us in [2^oct, 2^(oct+1))
	if oct >= octaves {
		return numBuckets - 1
	}
	var sub uint64
	if oct >= 2 {
		sub = (us >> (oct - 2)) & (subBuckets - 1)
	} else {
		sub = (us << (2 - oct)) & (subBuckets - 1)
	}
	return oct*subBuckets + int(sub)
}

// bucketUpper is the upper bound of a bucket, the value a percentile in it
// reports (so estimates err on the slow side).
func bucketUpper(b int) time.Duration {
	oct, sub := b/subBuckets, b%subBuckets
	us := math.Ldexp(1+float64(sub+1)/subBuckets, oct)
	return time.Duration(us * float64(time.Microsecond))
}

// Stats summarises a series over its window.
type Stats struct {
	Requests uint64
	Errors   uint64
	P50      time.Duration
	P95      time.Duration
	P99      time.Duration
}

// ErrorRate is Errors/Requests, 0 without requests.
func (s Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// raw sums the window's slots: its histogram and its errors.
func (s *Series) raw() (hist [numBuckets]uint64, errors uint64) {
	for i := range s.slots {
		sl := &s.slots[i]
		errors += sl.errors.Load()
		for b := range hist {
			hist[b] += uint64(sl.hist[b].Load())
		}
	}
	return hist, errors
}

func statsOf(hist *[numBuckets]uint64, errors uint64) Stats {
	var st Stats
	for _, c := range hist {
		st.Requests += c
	}
	// A writer racing with the read may have added its error before its
	// histogram entry; never report more errors than requests.
	st.Errors = min(errors, st.Requests)
	st.P50 = quantile(hist, st.Requests, 0.50)
	st.P95 = quantile(hist, st.Requests, 0.95)
	st.P99 = quantile(hist, st.Requests, 0.99)
	return st
}

func quantile(hist *[numBuckets]uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for b, c := range hist {
		seen += c
		if seen >= rank {
			return bucketUpper(b)
		}
	}
	return bucketUpper(numBuckets - 1)
}

// Meter holds the series of one deployment: one per pool and one per flag,
// counting the requests that had the flag on. The flag-off cohort is not
// recorded: it is every pool's requests minus the flag-on ones, so a request
// pays only for the flags it has. Series are shared by name across meters
// (see Registry), so a version that keeps a pool or a flag keeps its window.
type Meter struct {
	cur   *atomic.Uint32 // the slot being written; shared by a deployment's meters
	pools []*Series
	flags []*Series
}

// Clock advances the slot every meter of a deployment writes to.
type Clock struct{ cur atomic.Uint32 }

// Advance moves to the next slot after clearing it in every series given,
// so writers always land in a slot that holds only the current period.
func (c *Clock) Advance(series ...*Series) {
	next := (c.cur.Load() + 1) % Slots
	for _, s := range series {
		s.clear(next)
	}
	c.cur.Store(next)
}

// Record counts one finished request: its pool (index into the snapshot's
// pools), its flag set (bit i for the i-th flag), whether it failed, and its
// latency. Safe for concurrent use; no lock, no allocation: one atomic add
// for the pool and one per flag that is on.
func (m *Meter) Record(pool int, flags uint64, failed bool, latency time.Duration) {
	i := m.cur.Load()
	b := latencyBucket(latency)
	m.pools[pool].add(i, b, failed)
	for flags != 0 {
		f := bits.TrailingZeros64(flags)
		flags &= flags - 1
		if f < len(m.flags) {
			m.flags[f].add(i, b, failed)
		}
	}
}

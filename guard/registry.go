package guard

import (
	"slices"
	"sync"
	"time"
)

// Registry holds a deployment's series by name and the clock they share. A
// meter built for a new version reuses the series of every pool and flag the
// version keeps, so a weight change or a flag ramp does not reset windows.
type Registry struct {
	clock Clock

	// mu protects pools and flags (the maps, not the series' counters).
	mu    sync.Mutex
	pools map[string]*Series
	flags map[string]*Series // flag-on cohorts
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{pools: map[string]*Series{}, flags: map[string]*Series{}}
}

// Meter returns a meter over the named pools and flags, in the order the
// snapshot indexes them, creating series as needed. Series of names no
// longer used stay until Prune: a version that fails to go live must not
// cost the live one its windows.
func (r *Registry) Meter(poolNames, flagNames []string) *Meter {
	r.mu.Lock()
	defer r.mu.Unlock()
	series := func(m map[string]*Series, names []string) []*Series {
		out := make([]*Series, len(names))
		for i, n := range names {
			s := m[n]
			if s == nil {
				s = new(Series)
				m[n] = s
			}
			out[i] = s
		}
		return out
	}
	return &Meter{cur: &r.clock.cur, pools: series(r.pools, poolNames), flags: series(r.flags, flagNames)}
}

// Prune drops the series of pools and flags not named, once the version
// that no longer has them is live.
func (r *Registry) Prune(poolNames, flagNames []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := func(m map[string]*Series, names []string) {
		for n := range m {
			if !slices.Contains(names, n) {
				delete(m, n)
			}
		}
	}
	keep(r.pools, poolNames)
	keep(r.flags, flagNames)
}

// Advance moves every series to its next slot; the evaluator calls it once
// per Window/Slots.
func (r *Registry) Advance() {
	r.mu.Lock()
	defer r.mu.Unlock() // also guards the series' folded totals
	all := make([]*Series, 0, len(r.pools)+len(r.flags))
	for _, s := range r.pools {
		all = append(all, s)
	}
	for _, s := range r.flags {
		all = append(all, s)
	}
	r.clock.Advance(all...)
}

// Window is a deployment's statistics over the window.
type Window struct {
	Pools map[string]Stats
	Flags map[string]Cohorts[Stats]
}

// Cohorts are a flag's two populations: the requests that had it on and
// those that did not.
type Cohorts[T any] struct {
	On  T `json:"on"`
	Off T `json:"off"`
}

// Stats reads every series. A flag's off cohort is all pools' requests less
// its on cohort.
func (r *Registry) Stats() Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := Window{Pools: make(map[string]Stats, len(r.pools)), Flags: make(map[string]Cohorts[Stats], len(r.flags))}
	var total [numBuckets]uint64
	var totalErrors uint64
	for n, s := range r.pools {
		hist, errs := s.raw()
		w.Pools[n] = statsOf(&hist, errs)
		for b, c := range hist {
			total[b] += c
		}
		totalErrors += errs
	}
	for n, s := range r.flags {
		on, onErrs := s.raw()
		var off [numBuckets]uint64
		for b := range off {
			off[b] = total[b] - min(on[b], total[b]) // reads race with writers: never below 0
		}
		w.Flags[n] = Cohorts[Stats]{On: statsOf(&on, onErrs), Off: statsOf(&off, totalErrors-min(onErrs, totalErrors))}
	}
	return w
}

// Total is a population's counts since its series was created.
type Total struct {
	Requests uint64
	Errors   uint64
	// Buckets are cumulative counts of requests at or under each latency in
	// Bounds, for a Prometheus histogram.
	Buckets []uint64
	// Sum estimates the total latency from bucket midpoints, in seconds.
	Sum float64
}

// Bounds are the upper latency bounds, in seconds, of Total.Buckets: one per
// power of two of microseconds (every fourth histogram bucket), a coarser
// view that keeps the exposition small.
var Bounds = func() []float64 {
	var out []float64
	for b := subBuckets - 1; b < numBuckets; b += subBuckets {
		out = append(out, bucketUpper(b).Seconds())
	}
	return out
}()

// Totals reads every population's totals: pools by name, and flags by name
// as [off, on] (off derived as all pools less on).
func (r *Registry) Totals() (pools map[string]Total, flags map[string][2]Total) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pools = make(map[string]Total, len(r.pools))
	flags = make(map[string][2]Total, len(r.flags))
	var all [numBuckets]uint64
	var allErrors uint64
	for n, s := range r.pools {
		hist, errs := s.totals()
		pools[n] = totalOf(&hist, errs)
		for b, c := range hist {
			all[b] += c
		}
		allErrors += errs
	}
	for n, s := range r.flags {
		on, onErrs := s.totals()
		var off [numBuckets]uint64
		for b := range off {
			off[b] = all[b] - min(on[b], all[b])
		}
		flags[n] = [2]Total{totalOf(&off, allErrors-min(onErrs, allErrors)), totalOf(&on, onErrs)}
	}
	return pools, flags
}

// totals is folded plus the live window; the caller holds the registry lock.
func (s *Series) totals() ([numBuckets]uint64, uint64) {
	hist, errs := s.raw()
	for b := range hist {
		hist[b] += s.folded[b]
	}
	return hist, errs + s.foldedError
}

func totalOf(hist *[numBuckets]uint64, errors uint64) Total {
	t := Total{Buckets: make([]uint64, 0, len(Bounds))}
	var cum uint64
	lower := time.Duration(0)
	for b, c := range hist {
		cum += c
		upper := bucketUpper(b)
		t.Sum += float64(c) * (lower + upper).Seconds() / 2
		lower = upper
		if b%subBuckets == subBuckets-1 {
			t.Buckets = append(t.Buckets, cum)
		}
	}
	t.Requests = cum
	t.Errors = min(errors, cum)
	return t
}

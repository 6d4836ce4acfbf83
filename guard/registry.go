package guard

import "sync"

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
// snapshot indexes them, creating series as needed and dropping series of
// names no longer used.
func (r *Registry) Meter(poolNames, flagNames []string) *Meter {
	r.mu.Lock()
	defer r.mu.Unlock()
	pools := make([]*Series, len(poolNames))
	keepPools := make(map[string]*Series, len(poolNames))
	for i, n := range poolNames {
		s := r.pools[n]
		if s == nil {
			s = new(Series)
		}
		pools[i], keepPools[n] = s, s
	}
	flags := make([]*Series, len(flagNames))
	keepFlags := make(map[string]*Series, len(flagNames))
	for i, n := range flagNames {
		s := r.flags[n]
		if s == nil {
			s = new(Series)
		}
		flags[i], keepFlags[n] = s, s
	}
	r.pools, r.flags = keepPools, keepFlags
	return &Meter{cur: &r.clock.cur, pools: pools, flags: flags}
}

// Advance moves every series to its next slot; the evaluator calls it once
// per Window/Slots.
func (r *Registry) Advance() {
	r.mu.Lock()
	all := make([]*Series, 0, len(r.pools)+2*len(r.flags))
	for _, s := range r.pools {
		all = append(all, s)
	}
	for _, s := range r.flags {
		all = append(all, s)
	}
	r.mu.Unlock()
	r.clock.Advance(all...)
}

// Window is a deployment's statistics over the window.
type Window struct {
	Pools map[string]Stats
	// Flags holds, per flag, the cohort without it [0] and with it [1].
	Flags map[string][2]Stats
}

// Stats reads every series. A flag's off cohort is all pools' requests less
// its on cohort.
func (r *Registry) Stats() Window {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := Window{Pools: make(map[string]Stats, len(r.pools)), Flags: make(map[string][2]Stats, len(r.flags))}
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
		w.Flags[n] = [2]Stats{statsOf(&off, totalErrors-min(onErrs, totalErrors)), statsOf(&on, onErrs)}
	}
	return w
}

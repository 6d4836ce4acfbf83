package guard

import (
	"encoding/json"
	"slices"
	"time"
)

// Summary is one instance's windows of one deployment, compact enough to
// publish every second: per pool and per flag's on cohort, the errors and
// the latency histogram's non-empty buckets. Summaries of several
// instances merge (MergeWindow) into the fleet's window, so min_requests
// and error rates count every instance's traffic.
type Summary struct {
	Pools map[string]SeriesSummary `json:"p,omitempty"`
	Flags map[string]SeriesSummary `json:"f,omitempty"`
	// Criteria are the external criteria as the elected instance, which
	// probes them, last judged them; shown by the others' /guard.
	Criteria map[string]CriterionView `json:"c,omitempty"`
}

// SeriesSummary is one population's window: its errors and its histogram
// as [bucket, count] pairs, buckets ascending.
type SeriesSummary struct {
	Errors  uint64      `json:"e,omitempty"`
	Buckets [][2]uint64 `json:"h,omitempty"`
}

// FleetSummary is what one instance publishes: its summary of every
// deployment it serves, and when it took them.
type FleetSummary struct {
	Time        time.Time          `json:"t"`
	Deployments map[string]Summary `json:"d"`
}

// Summary reads the registry's windows as a Summary.
func (r *Registry) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := func(m map[string]*Series) map[string]SeriesSummary {
		out := make(map[string]SeriesSummary, len(m))
		for n, s := range m {
			hist, errs := s.raw()
			var ss SeriesSummary
			ss.Errors = errs
			for b, c := range hist {
				if c > 0 {
					ss.Buckets = append(ss.Buckets, [2]uint64{uint64(b), c})
				}
			}
			out[n] = ss
		}
		return out
	}
	return Summary{Pools: sum(r.pools), Flags: sum(r.flags)}
}

// MergeWindow adds the summaries' populations bucket by bucket and reads
// the sum as a Window, as Registry.Stats reads one instance's: a flag's
// off cohort is all pools' requests less its on cohort, across the fleet.
// Populations are those of first (the judging instance's own, which
// matches the snapshot it judges); the others' pools or flags it does not
// have are ignored.
func MergeWindow(first Summary, others ...Summary) Window {
	type acc struct {
		hist   [numBuckets]uint64
		errors uint64
	}
	add := func(a *acc, s SeriesSummary) {
		a.errors += s.Errors
		for _, b := range s.Buckets {
			if b[0] < numBuckets {
				a.hist[b[0]] += b[1]
			}
		}
	}
	pools := make(map[string]*acc, len(first.Pools))
	flags := make(map[string]*acc, len(first.Flags))
	for n := range first.Pools {
		pools[n] = new(acc)
	}
	for n := range first.Flags {
		flags[n] = new(acc)
	}
	for _, s := range append([]Summary{first}, others...) {
		for n, ss := range s.Pools {
			if a := pools[n]; a != nil {
				add(a, ss)
			}
		}
		for n, ss := range s.Flags {
			if a := flags[n]; a != nil {
				add(a, ss)
			}
		}
	}
	w := Window{Pools: make(map[string]Stats, len(pools)), Flags: make(map[string]Cohorts[Stats], len(flags))}
	var total acc
	for n, a := range pools {
		w.Pools[n] = statsOf(&a.hist, a.errors)
		for b, c := range a.hist {
			total.hist[b] += c
		}
		total.errors += a.errors
	}
	for n, a := range flags {
		var off [numBuckets]uint64
		for b := range off {
			off[b] = total.hist[b] - min(a.hist[b], total.hist[b])
		}
		w.Flags[n] = Cohorts[Stats]{On: statsOf(&a.hist, a.errors), Off: statsOf(&off, total.errors-min(a.errors, total.errors))}
	}
	return w
}

// Peers sorts the other instances' published summaries for a judgement
// at now: those published within maxAge are merged; older ones are left
// out and named, with the time of their last summary.
func Peers(self string, published map[string]FleetSummary, name string, now time.Time, maxAge time.Duration) (merged []Summary, instances []string, stale map[string]time.Time) {
	for _, inst := range slices.Sorted(func(yield func(string) bool) {
		for k := range published {
			if !yield(k) {
				return
			}
		}
	}) {
		if inst == self {
			continue
		}
		fs := published[inst]
		s, ok := fs.Deployments[name]
		if !ok {
			continue // the instance does not serve this deployment
		}
		if now.Sub(fs.Time) > maxAge {
			if stale == nil {
				stale = map[string]time.Time{}
			}
			stale[inst] = fs.Time
			continue
		}
		merged = append(merged, s)
		instances = append(instances, inst)
	}
	return merged, instances, stale
}

// DecodeFleetSummary reads a published summary.
func DecodeFleetSummary(b []byte) (FleetSummary, error) {
	var fs FleetSummary
	err := json.Unmarshal(b, &fs)
	return fs, err
}

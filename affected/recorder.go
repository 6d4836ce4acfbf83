package affected

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rule says which requests one release served on one deployment: those of
// its pool and those in the cohort of a flag it raised.
//
// The pool's release label is not compared with the release's: a label is
// put on the pool by hand or with the release's one-step apply, and a
// release whose label never reached its pool would record nothing. A
// release stops recording its pool when a later one ships there (Rules).
type Rule struct {
	Release string
	// Pool is the pool the release ships to; "" when it ships to none.
	Pool string
	// Flags are the flags the release raised.
	Flags []string
}

// matches reports whether a request served by pool with flags on
// (comma-separated, as in X-Switchback-Flags) is the rule's.
func (ru *Rule) matches(pool, flags string) bool {
	if ru.Pool != "" && pool == ru.Pool {
		return true
	}
	for _, f := range ru.Flags {
		if hasFlag(flags, f) {
			return true
		}
	}
	return false
}

// hasFlag reports whether name is one of the comma-separated flags.
func hasFlag(flags, name string) bool {
	for flags != "" {
		var f string
		f, flags, _ = strings.Cut(flags, ",")
		if f == name {
			return true
		}
	}
	return false
}

// Set is the releases recording on one deployment, with their rings. It
// is immutable: a change builds a new one.
type Set struct {
	recs []recording
}

type recording struct {
	rule Rule
	ring *Ring
}

// Matches reports whether any release of the set served the request (see
// Rule). Check it before computing what only a recorded entry needs.
func (s *Set) Matches(pool, flags string) bool {
	for i := range s.recs {
		if s.recs[i].rule.matches(pool, flags) {
			return true
		}
	}
	return false
}

// Add appends e to the ring of every release that served it.
func (s *Set) Add(e Entry) {
	for i := range s.recs {
		if s.recs[i].rule.matches(e.Pool, e.Flags) {
			s.recs[i].ring.Add(e)
		}
	}
}

// DefaultKeep is how many stopped releases' entries a Recorder keeps.
const DefaultKeep = 16

// Recorder is one deployment's recording on one instance: the set the
// request path reads, and the rings of the releases that record or
// recorded, until they are too old to keep.
type Recorder struct {
	keep int
	now  func() time.Time

	set atomic.Pointer[Set]

	// mu protects rings and stopped, and serialises Update.
	mu    sync.Mutex
	rings map[string]*Ring
	// stopped are the releases whose rings stopped, oldest first.
	stopped []string
}

// NewRecorder returns a recorder that keeps the entries of the last keep
// stopped releases (DefaultKeep when 0); now is the clock (time.Now when
// nil).
func NewRecorder(keep int, now func() time.Time) *Recorder {
	if keep <= 0 {
		keep = DefaultKeep
	}
	if now == nil {
		now = time.Now
	}
	return &Recorder{keep: keep, now: now, rings: map[string]*Ring{}}
}

// Active is the set recording now, nil when no release records: the
// request path's one atomic load.
func (r *Recorder) Active() *Set { return r.set.Load() }

// Update makes rules the releases that record: a release new to it gets
// a ring of capacity entries (DefaultCapacity when 0), one that left it
// stops (and keeps what it recorded), one that comes back records again
// into its ring.
func (r *Recorder) Update(rules []Rule, capacity int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	next := &Set{}
	live := map[string]bool{}
	for _, ru := range rules {
		ring, ok := r.rings[ru.Release]
		switch {
		case !ok:
			ring = NewRing(capacity, now)
			r.rings[ru.Release] = ring
		case slices.Contains(r.stopped, ru.Release):
			r.stopped = slices.DeleteFunc(r.stopped, func(id string) bool { return id == ru.Release })
			ring.resume()
		}
		ru.Flags = slices.Clone(ru.Flags)
		next.recs = append(next.recs, recording{rule: ru, ring: ring})
		live[ru.Release] = true
	}
	for id, ring := range r.rings {
		if !live[id] && !slices.Contains(r.stopped, id) {
			ring.stop(now)
			r.stopped = append(r.stopped, id)
		}
	}
	for len(r.stopped) > r.keep {
		delete(r.rings, r.stopped[0])
		r.stopped = r.stopped[1:]
	}
	if len(next.recs) == 0 {
		next = nil
	}
	r.set.Store(next)
}

// Log returns what this instance recorded of a release, and whether it
// recorded anything of it (or still keeps it).
func (r *Recorder) Log(release string) (Log, bool) {
	r.mu.Lock()
	ring, ok := r.rings[release]
	r.mu.Unlock()
	if !ok {
		return Log{}, false
	}
	return ring.Log(), true
}

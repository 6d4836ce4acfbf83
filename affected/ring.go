// Package affected records the requests that may have written data while
// a release served them, so that a team can reconcile what a bad release
// wrote (orders taken, rows changed) after rolling it back: per release, a
// bounded ring of entries (subject, time, method, path, status, request
// id) that counts what it had to drop.
//
// Only requests whose method may change something are recorded. GET,
// HEAD, OPTIONS and TRACE are reads (RFC 9110's safe methods) and cost
// nothing: IsRead is checked first, before anything is loaded or locked.
// Everything else (POST, PUT, PATCH, DELETE, CONNECT and any other method)
// costs one append to a preallocated ring under a mutex.
//
// The package knows nothing of Caddy or etcd: the shell decides which
// requests a release served and feeds them in; the admin API reads and
// merges what each instance holds.
package affected

import (
	"net/http"
	"sync"
	"time"
)

// DefaultCapacity is how many entries a release's ring holds on one
// instance before the oldest are dropped (and counted).
const DefaultCapacity = 100_000

// IsRead reports whether a request with this method only reads: GET, HEAD,
// OPTIONS and TRACE, the methods RFC 9110 calls safe. Those are never
// recorded. It compares strings and allocates nothing.
func IsRead(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Entry is one recorded request. The strings are the request's own (its
// method, path, subject and request id) or the snapshot's (pool, flags):
// an entry keeps no request alive.
type Entry struct {
	Time time.Time `json:"time"`
	// Subject is the sticky subject the gateway bucketed the request by;
	// "" when the request carried none and was placed at random.
	Subject string `json:"subject"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	// Status is the upstream's status; for a request the proxy failed
	// (no answer), the status the gateway answered with.
	Status int `json:"status"`
	// RequestID is the client's X-Request-ID, or Caddy's request UUID
	// (logged in the access log as "uuid").
	RequestID string `json:"request_id"`
	// Pool served the request; Flags were on for it, comma-separated.
	Pool  string `json:"pool"`
	Flags string `json:"flags,omitempty"`
}

// Ring is one release's entries on one instance: slots that grow as
// entries come, up to its capacity, then are overwritten oldest first. A
// release that serves few writes costs only what it holds, not its
// capacity (12.8 MB at the default).
type Ring struct {
	// mu protects every field below. Appends hold it for one slot copy.
	mu    sync.Mutex
	slots []Entry
	// n is the number of entries in the ring's current form: slot
	// n%len(slots) is the next to write.
	n       uint64
	dropped uint64
	// droppedUntil is the time of the newest entry dropped.
	droppedUntil time.Time
	capacity     int
	since        time.Time
	// until is when recording stopped; zero while it records.
	until time.Time
}

// NewRing makes a ring of at most capacity entries (DefaultCapacity when 0
// or less) that began recording at since.
func NewRing(capacity int, since time.Time) *Ring {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	return &Ring{capacity: capacity, since: since}
}

// Add appends e, dropping the oldest entry when the ring is full. A
// stopped ring ignores it: a request that was under way when recording
// stopped is not worth reopening the ring for.
func (r *Ring) Add(e Entry) {
	r.mu.Lock()
	switch {
	case !r.until.IsZero():
	case len(r.slots) < r.capacity: // still filling: n == len(slots)
		r.slots = append(r.slots, e)
		r.n++
	default:
		i := r.n % uint64(len(r.slots))
		if r.n >= uint64(len(r.slots)) {
			r.dropped++
			r.droppedUntil = r.slots[i].Time
		}
		r.slots[i] = e
		r.n++
	}
	r.mu.Unlock()
}

// Log is what a ring holds, as read at one moment.
type Log struct {
	// Entries, oldest first.
	Entries []Entry `json:"entries"`
	// Dropped counts the entries overwritten because the ring was full;
	// DroppedUntil is the newest of them: entries are missing between the
	// start of recording and that time.
	Dropped      uint64    `json:"dropped"`
	DroppedUntil time.Time `json:"dropped_until,omitzero"`
	Capacity     int       `json:"capacity"`
	// Since is when this instance began recording the release; Until when
	// it stopped (zero while it records).
	Since time.Time `json:"since"`
	Until time.Time `json:"until,omitzero"`
}

// Log copies the entries out, oldest first.
func (r *Ring) Log() Log {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Log{Entries: r.ordered(), Dropped: r.dropped, DroppedUntil: r.droppedUntil,
		Capacity: r.capacity, Since: r.since, Until: r.until}
}

// ordered returns a copy of the entries, oldest first. r.mu must be held.
func (r *Ring) ordered() []Entry {
	size := uint64(len(r.slots))
	if r.n <= size {
		return append([]Entry(nil), r.slots[:r.n]...)
	}
	start := r.n % size
	out := make([]Entry, 0, size)
	out = append(out, r.slots[start:]...)
	return append(out, r.slots[:start]...)
}

// stop ends recording at t and gives back the unused slots: a stopped
// ring keeps exactly its entries, so the rings of past releases cost only
// what they hold.
func (r *Ring) stop(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.until.IsZero() {
		return
	}
	r.slots = r.ordered()
	r.n = uint64(len(r.slots))
	r.until = t
}

// resume starts a stopped ring recording again (a release that is
// current again), with the entries it kept, up to its capacity.
func (r *Ring) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.until.IsZero() {
		return
	}
	// stop left exactly the entries, oldest first: Add fills on from there.
	r.n = uint64(len(r.slots))
	r.until = time.Time{}
}

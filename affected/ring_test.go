package affected

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

func entryAt(i int) Entry {
	return Entry{Time: time.Unix(int64(i), 0), Subject: fmt.Sprint("u", i), Method: http.MethodPost, Path: "/orders",
		Status: 201, RequestID: fmt.Sprint("req-", i), Pool: "green"}
}

func TestIsRead(t *testing.T) {
	tests := []struct {
		method string
		want   bool
	}{
		{"GET", true}, {"HEAD", true}, {"OPTIONS", true}, {"TRACE", true},
		{"POST", false}, {"PUT", false}, {"PATCH", false}, {"DELETE", false}, {"CONNECT", false}, {"PROPFIND", false},
		{"get", false}, // methods are case-sensitive; an odd one is recorded rather than missed
	}
	for _, tt := range tests {
		if got := IsRead(tt.method); got != tt.want {
			t.Errorf("IsRead(%q) = %v, want %v", tt.method, got, tt.want)
		}
	}
}

func TestRingKeepsNewestAndCountsDropped(t *testing.T) {
	tests := []struct {
		added, capacity int
		wantFirst       int
		wantDropped     uint64
	}{
		{added: 0, capacity: 3},
		{added: 2, capacity: 3, wantFirst: 0},
		{added: 3, capacity: 3, wantFirst: 0},
		{added: 7, capacity: 3, wantFirst: 4, wantDropped: 4},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d_in_%d", tt.added, tt.capacity), func(t *testing.T) {
			r := NewRing(tt.capacity, time.Unix(0, 0))
			for i := range tt.added {
				r.Add(entryAt(i))
			}
			l := r.Log()
			if got, want := len(l.Entries), min(tt.added, tt.capacity); got != want {
				t.Fatalf("%d entries, want %d", got, want)
			}
			for i, e := range l.Entries {
				if want := entryAt(tt.wantFirst + i); e != want {
					t.Errorf("entry %d = %+v, want %+v", i, e, want)
				}
			}
			if l.Dropped != tt.wantDropped {
				t.Errorf("dropped %d, want %d", l.Dropped, tt.wantDropped)
			}
			if tt.wantDropped > 0 && !l.DroppedUntil.Equal(entryAt(tt.wantFirst-1).Time) {
				t.Errorf("dropped until %v, want the newest dropped entry's time %v", l.DroppedUntil, entryAt(tt.wantFirst-1).Time)
			}
		})
	}
}

func TestStoppedRingKeepsEntriesAndIgnoresAdds(t *testing.T) {
	r := NewRing(4, time.Unix(0, 0))
	for i := range 6 {
		r.Add(entryAt(i))
	}
	r.stop(time.Unix(100, 0))
	r.Add(entryAt(99))
	l := r.Log()
	if len(l.Entries) != 4 || l.Entries[0] != entryAt(2) || l.Entries[3] != entryAt(5) || l.Dropped != 2 || !l.Until.Equal(time.Unix(100, 0)) {
		t.Fatalf("stopped ring: %+v; want entries 2..5, 2 dropped, until 100", l)
	}
	if cap(r.slots) != 4 || len(r.slots) != 4 {
		t.Errorf("a stopped ring keeps %d slots (cap %d), want exactly its 4 entries", len(r.slots), cap(r.slots))
	}
	r.resume()
	r.Add(entryAt(6))
	r.Add(entryAt(7))
	l = r.Log()
	if len(l.Entries) != 4 || l.Entries[0] != entryAt(4) || l.Entries[3] != entryAt(7) || l.Dropped != 4 || !l.Until.IsZero() {
		t.Fatalf("resumed ring: %+v; want entries 4..7, 4 dropped, recording", l)
	}
}

func TestRingConcurrentAdds(t *testing.T) {
	r := NewRing(1000, time.Unix(0, 0))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				r.Add(entryAt(w*1000 + i))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			_ = r.Log()
		}
	})
	wg.Wait()
	if l := r.Log(); len(l.Entries) != 1000 || l.Dropped != 3000 {
		t.Fatalf("%d entries, %d dropped; want 1000 and 3000", len(l.Entries), l.Dropped)
	}
}

// TestRingGrowsWithItsEntries: a ring holds only what it was given until
// it reaches its capacity, then drops the oldest.
func TestRingGrowsWithItsEntries(t *testing.T) {
	r := NewRing(1000, time.Unix(0, 0))
	for i := range 10 {
		r.Add(Entry{Time: time.Unix(int64(i), 0), Method: "POST"})
	}
	if got := cap(r.slots); got >= 1000 {
		t.Fatalf("after 10 entries the ring has room for %d", got)
	}
	for i := 10; i < 1500; i++ {
		r.Add(Entry{Time: time.Unix(int64(i), 0), Method: "POST"})
	}
	l := r.Log()
	if len(l.Entries) != 1000 || l.Dropped != 500 || !l.Entries[0].Time.Equal(time.Unix(500, 0)) || !l.DroppedUntil.Equal(time.Unix(499, 0)) {
		t.Fatalf("1500 entries into 1000 slots: %d kept, %d dropped until %v, oldest %v", len(l.Entries), l.Dropped, l.DroppedUntil, l.Entries[0].Time)
	}
}

package caddymodule

import (
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/guard"
)

// TestGuardStateMarks: each applied version keeps the window it replaced,
// once, and only the newest keepMarks are kept.
func TestGuardStateMarks(t *testing.T) {
	st := &guardState{}
	at := time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC)
	w := func(n uint64) guard.Window {
		return guard.Window{Pools: map[string]guard.Stats{"blue": {Requests: n}}}
	}
	st.mark(1, at, w(0))
	st.mark(1, at.Add(time.Second), w(5)) // the same version seen again
	if len(st.marks) != 1 || st.marks[0].Window.Pools["blue"].Requests != 0 {
		t.Fatalf("marks %+v, want v1's first window only", st.marks)
	}
	for v := uint64(2); v <= keepMarks+5; v++ {
		st.mark(v, at.Add(time.Duration(v)*time.Second), w(v*10))
	}
	if len(st.marks) != keepMarks {
		t.Fatalf("%d marks kept, want %d", len(st.marks), keepMarks)
	}
	if first, last := st.marks[0], st.marks[len(st.marks)-1]; first.Version != 6 || last.Version != keepMarks+5 || last.Window.Pools["blue"].Requests != (keepMarks+5)*10 {
		t.Errorf("kept v%d..v%d, want v6..v%d with their windows", first.Version, last.Version, keepMarks+5)
	}
}

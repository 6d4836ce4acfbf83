package caddymodule

import (
	"time"

	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/triage"
)

// keepMarks is how many versions' "before" windows a deployment keeps:
// enough for an incident's worth of changes, bounded whatever the rate.
const keepMarks = 32

// mark keeps the window as it was when a version was applied, within one
// evaluator tick of it: the figures from before that version, which triage
// compares with the figures now. The meters are sliding windows, so
// without this the "before" of a change is gone one window after it.
func (st *guardState) mark(version uint64, at time.Time, w guard.Window) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if n := len(st.marks); n > 0 && st.marks[n-1].Version == version {
		return
	}
	st.marks = append(st.marks, triage.Mark{Version: version, Applied: at, Window: w})
	if len(st.marks) > keepMarks {
		st.marks = append(st.marks[:0:0], st.marks[len(st.marks)-keepMarks:]...)
	}
}

// measured is what this instance measured of a deployment, for triage: the
// window now, the windows before recent versions and the guard's view.
func (a *App) measured(name string) (triage.Measured, bool) {
	entry, ok := lookupEntry(name)
	if !ok {
		return triage.Measured{}, false
	}
	// The same window the guard judges: merged with the fleet's when other
	// instances publish theirs.
	w, fleet, _, _ := a.window(name, entry, a.now())
	m := triage.Measured{Instance: a.Instance, Now: w, Fleet: fleet}
	a.guardsMu.Lock()
	st, ok := a.guards[name]
	a.guardsMu.Unlock()
	if ok {
		st.mu.Lock()
		m.Marks = append([]triage.Mark(nil), st.marks...)
		if !st.view.Updated.IsZero() {
			v := st.view
			m.View = &v
		}
		st.mu.Unlock()
	}
	return m, true
}

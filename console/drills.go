package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
)

// drillsShown is how many drill results the page lists.
const drillsShown = 200

// drillRow is a drill result for the page.
type drillRow struct {
	admin.DrillRecord
	// Outcome is passed, failed or not applicable, in words.
	Outcome string
	// Class colours it like the release statuses that mean the same.
	Class    string
	When     stamp
	Recovery string // trigger to recovered; empty when clients never recovered
	FlagAt   string
	Where    string
}

func drillRowOf(now time.Time, d admin.DrillRecord) drillRow {
	r := drillRow{DrillRecord: d, When: stampOf(now, d.Started), Where: d.Target}
	switch {
	case d.NotApplicable != "":
		r.Outcome, r.Class = "not applicable", "status-rolled-back"
	case d.Passed:
		r.Outcome, r.Class = "passed", "status-finished"
	default:
		r.Outcome, r.Class = "failed", "status-rollback-failed"
	}
	if d.Deployment != "" {
		r.Where = d.Deployment + " on " + d.Target
	}
	if rec := d.Durations.Recovered; rec != nil {
		r.Recovery = took(time.Duration(*rec) * time.Millisecond)
	}
	if d.FlagAfterMS > 0 {
		r.FlagAt = took(time.Duration(d.FlagAfterMS) * time.Millisecond)
	}
	return r
}

// patternLast is the newest drill of a pattern and its newest pass: a
// pattern whose last pass is old is a rollback path nobody has proven
// lately.
type patternLast struct {
	Pattern    string
	Last       drillRow
	LastPassed stamp
	Passed     bool
}

type drillsData struct {
	Pattern  string
	Rows     []drillRow
	Patterns []patternLast
}

func (c *Console) handleDrills(w http.ResponseWriter, r *http.Request, s *session) {
	pattern := r.URL.Query().Get("pattern")
	list, err := c.apiFor(r, s).Drills(r.Context(), pattern, drillsShown)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read the drill history: "+apiMessage(err))
		return
	}
	now := c.now()
	data := drillsData{Pattern: pattern}
	last := map[string]*patternLast{}
	for _, d := range list {
		row := drillRowOf(now, d)
		data.Rows = append(data.Rows, row)
		p, ok := last[d.Pattern]
		if !ok {
			p = &patternLast{Pattern: d.Pattern, Last: row}
			last[d.Pattern] = p
		}
		if d.Passed && !p.Passed {
			p.Passed, p.LastPassed = true, row.When
		}
	}
	for _, p := range last {
		data.Patterns = append(data.Patterns, *p)
	}
	slices.SortFunc(data.Patterns, func(a, b patternLast) int {
		return strings.Compare(a.Pattern, b.Pattern)
	})
	c.render(w, r, http.StatusOK, "drills", &page{Title: "Drills", Nav: "drills", User: s, Data: data})
}

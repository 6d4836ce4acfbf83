package drill

import (
	"slices"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
)

// Scheduled is one scheduled drill to run: a deployment and its patterns
// that are due.
type Scheduled struct {
	Deployment string
	Patterns   []string
}

// Due decides which scheduled drills run at now, as a pure function of the
// history, so the elected instance's loop only ticks and runs what it
// says: for each deployment marked staging (in the order given), every
// pattern whose newest drill against that deployment started at least
// every ago, or never. A sandbox drill proves nothing about staging and
// does not count; a failed one does, so a failing pattern is retried on
// the schedule, not on every tick.
func Due(every time.Duration, patterns, staging []string, history []result.Result, now time.Time) []Scheduled {
	newest := map[[2]string]time.Time{}
	for _, r := range history {
		if r.Target == "sandbox" || r.Deployment == "" {
			continue
		}
		k := [2]string{r.Deployment, r.Pattern}
		if r.Started.After(newest[k]) {
			newest[k] = r.Started
		}
	}
	var out []Scheduled
	for _, d := range staging {
		var due []string
		for _, p := range patterns {
			if last, ok := newest[[2]string{d, p}]; !ok || now.Sub(last) >= every {
				if !slices.Contains(due, p) {
					due = append(due, p)
				}
			}
		}
		if len(due) > 0 {
			out = append(out, Scheduled{Deployment: d, Patterns: due})
		}
	}
	return out
}

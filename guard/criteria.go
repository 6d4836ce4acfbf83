package guard

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

// Sample is one measurement of an external criterion (see package
// criteria).
type Sample struct {
	Time time.Time
	// Value is the figure compared with the threshold: a percentage of
	// connections, a query's value, an http status.
	Value float64
	// Text states it for people, e.g. "92.0% of connections (92 of 100)".
	Text string
	// Breach is whether the value is past the criterion's threshold.
	Breach bool
	// Err says why the probe failed.
	Err string
}

// CriterionState is what the elected instance knows of one criterion.
type CriterionState struct {
	Criterion gateway.Criterion
	// Last is the newest sample.
	Last Sample
	// Since is when the current breach began; zero without one.
	Since time.Time
}

// holds is whether the breach has lasted the criterion's `for` at now.
func (s CriterionState) holds(now time.Time) bool {
	return s.Last.Breach && !s.Since.IsZero() && now.Sub(s.Since) >= time.Duration(s.Criterion.For)
}

// CriterionView is a criterion in /guard.
type CriterionView struct {
	Kind    string    `json:"kind"`
	Value   float64   `json:"value"`
	Text    string    `json:"text,omitempty"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
	// Breach states the value while it is past the threshold; Since is
	// when that began, and Waiting says how long it must still hold.
	Breach  string    `json:"breach,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Waiting string    `json:"waiting,omitempty"`
}

// Change is a deployment's newest change within a criterion's window,
// found in its history: what a criterion's breach rolls back.
type Change struct {
	// Version is the version that made the change, Time when.
	Version uint64
	Time    time.Time
	// Flags maps each flag the change raised to its percentage before.
	Flags map[string]float64
	// Weights are the weights before the change, if it moved them.
	Weights map[string]float64
	// What states the change, e.g. "flag checkout raised 10% → 50%".
	What string
}

// ChangeOf is the change from prev to next that a criterion's breach can
// undo: the flags raised and the weights moved. ok is false when next
// made neither (a flag lowered, an upstream edited).
func ChangeOf(prev, next gateway.Config) (c Change, ok bool) {
	var what []string
	for _, name := range slices.Sorted(maps.Keys(next.Flags)) {
		before := prev.Flags[name].Percent // a new flag was at 0%
		if after := next.Flags[name].Percent; after > before {
			if c.Flags == nil {
				c.Flags = map[string]float64{}
			}
			c.Flags[name] = before
			what = append(what, fmt.Sprintf("flag %s raised %s%% → %s%%", name, gateway.FormatPercent(before), gateway.FormatPercent(after)))
		}
	}
	if !maps.Equal(prev.Weights, next.Weights) && len(prev.Weights) > 0 {
		c.Weights = maps.Clone(prev.Weights)
		what = append(what, fmt.Sprintf("weights moved %s → %s", gateway.DescribeWeights(prev.Weights), gateway.DescribeWeights(next.Weights)))
	}
	if len(what) == 0 {
		return Change{}, false
	}
	c.What = strings.Join(what, "; ")
	return c, true
}

// undo edits a document back to before the change.
func (c Change) undo(cfg *gateway.Config) error {
	for name, pct := range c.Flags {
		f, ok := cfg.Flags[name]
		if !ok {
			return fmt.Errorf("flag %q is gone", name)
		}
		f.Percent = pct
		cfg.Flags[name] = f
	}
	if c.Weights != nil {
		for pool := range c.Weights {
			if _, ok := cfg.Pools[pool]; !ok {
				return fmt.Errorf("pool %q is gone", pool)
			}
		}
		cfg.Weights = maps.Clone(c.Weights)
	}
	return nil
}

// judgeCriteria fills the view's criteria and returns the action their
// breach asks for: the newest change within the breaching criterion's
// window rolled back, or, when there is none, a notice.
func judgeCriteria(in Input, view *View) Action {
	var act Action
	for _, st := range in.Criteria {
		c := st.Criterion
		cv := CriterionView{Kind: c.Kind, Value: st.Last.Value, Text: st.Last.Text, Error: st.Last.Err, Checked: st.Last.Time}
		if st.Last.Breach {
			cv.Breach, cv.Since = st.Last.Text, st.Since
			if !st.holds(in.Now) {
				cv.Waiting = fmt.Sprintf("breaching for %v of %v", in.Now.Sub(st.Since).Round(time.Second), time.Duration(c.For))
			}
		}
		if view.Criteria == nil {
			view.Criteria = map[string]CriterionView{}
		}
		view.Criteria[c.Name] = cv
		if act.Kind != None || !st.holds(in.Now) {
			continue
		}
		why := fmt.Sprintf("criterion %s: %s", c.Name, breachText(c, st.Last))
		window := c.Window.Std(in.Policy.Window)
		if ch := in.Change; ch != nil && !ch.Time.Before(in.Now.Add(-window)) {
			change := *ch
			act = Action{Kind: Revert, Subject: "criterion:" + c.Name, Name: c.Name, Change: &change,
				Reason: fmt.Sprintf("%s; rolling back v%d (%s)", why, ch.Version, ch.What)}
			continue
		}
		act = Action{Kind: CriterionBreach, Subject: "criterion:" + c.Name, Name: c.Name,
			Reason: fmt.Sprintf("%s; no change within %v to roll back", why, window)}
	}
	return act
}

// breachText states a breaching sample against its threshold.
func breachText(c gateway.Criterion, s Sample) string {
	switch c.Kind {
	case gateway.CriterionDatabase:
		return fmt.Sprintf("%s > %s%%", s.Text, gateway.FormatPercent(c.Above))
	case gateway.CriterionPrometheus:
		return fmt.Sprintf("%s > %g", s.Text, c.Above)
	}
	return s.Text
}

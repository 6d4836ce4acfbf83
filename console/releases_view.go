package console

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/release"
)

// stamp is a moment as the release pages show it: how long ago, for
// reading at a glance, and the exact time beside it.
type stamp struct {
	T   time.Time
	Ago string
}

func stampOf(now, t time.Time) stamp {
	if t.IsZero() {
		return stamp{}
	}
	return stamp{T: t, Ago: ago(now.Sub(t))}
}

// ago says how long ago something happened, as people say it.
func ago(d time.Duration) string {
	switch {
	case d < 5*time.Second:
		return "just now" // or a clock a little ahead
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 || h >= 6 {
			return strconv.Itoa(h) + " h ago"
		}
		return fmt.Sprintf("%d h %d min ago", h, m)
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
}

// took is a duration the way a person compares it with the 90-second bar.
func took(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// statusView is a release status in words, with what it means for the
// person reading it.
type statusView struct {
	Class, Text, Means string
	// Bad marks a status that needs someone.
	Bad bool
}

var statuses = map[release.Status]statusView{
	release.Open:           {Text: "open", Means: "its changes are being made; every version written now belongs to it"},
	release.Finished:       {Text: "finished", Means: "it is live; its state after is recorded"},
	release.RollingBack:    {Text: "rolling back", Means: "the elected gateway instance is undoing it, one step at a time"},
	release.RolledBack:     {Text: "rolled back", Means: "every rollback step finished; the deployment is as before the release"},
	release.RollbackFailed: {Text: "rollback failed", Means: "a rollback step failed or was refused; the failed step says what to do", Bad: true},
}

func statusOf(s release.Status) statusView {
	v, ok := statuses[s]
	if !ok {
		v = statusView{Text: string(s), Means: "a status this console does not know"}
	}
	v.Class = "status-" + strings.ReplaceAll(string(s), "_", "-")
	return v
}

// releaseRow is a release in the list.
type releaseRow struct {
	release.Release
	Status   statusView
	Started  stamp
	Finished stamp
}

func releaseRowOf(now time.Time, r release.Release) releaseRow {
	return releaseRow{Release: r, Status: statusOf(r.Status), Started: stampOf(now, r.Started), Finished: stampOf(now, r.Finished)}
}

// changeRow is one thing a release changed: its value before and after.
type changeRow struct {
	What          string
	Before, After string
}

// releaseChanges lists what differs between before and after, in the
// order a rollback undoes it: flags, traffic and pools, services,
// databases. after nil (an open release) lists nothing.
func releaseChanges(before release.State, after *release.State) []changeRow {
	if after == nil {
		return nil
	}
	var out []changeRow
	add := func(what, b, a string) {
		if b != a {
			out = append(out, changeRow{What: what, Before: b, After: a})
		}
	}
	for _, name := range keys(before.Flags, after.Flags) {
		add("flag "+name, flagText(before.Flags, name), flagText(after.Flags, name))
	}
	for _, name := range keys(before.Weights, after.Weights) {
		add("traffic to pool "+name, weightText(before.Weights, name), weightText(after.Weights, name))
	}
	for _, name := range keys(before.Pools, after.Pools) {
		add("code on pool "+name, poolText(before.Pools, name), poolText(after.Pools, name))
	}
	for _, name := range keys(before.Services, after.Services) {
		add("service "+name, versionText(before.Services, name), versionText(after.Services, name))
	}
	for _, name := range keys(before.Databases, after.Databases) {
		add("database "+name+" schema", migrationText(before.Databases, name), migrationText(after.Databases, name))
	}
	if len(after.ChangeSets) > 0 {
		out = append(out, changeRow{What: "change sets", Before: "(none)", After: strings.Join(after.ChangeSets, ", ")})
	}
	return out
}

func keys[V any](a, b map[string]V) []string {
	all := maps.Clone(a)
	if all == nil {
		all = map[string]V{}
	}
	maps.Copy(all, b)
	return slices.Sorted(maps.Keys(all))
}

func flagText(m map[string]float64, name string) string {
	v, ok := m[name]
	if !ok {
		return "absent"
	}
	return "on for " + strconv.FormatFloat(v, 'f', -1, 64) + "%"
}

func weightText(m map[string]float64, name string) string {
	return strconv.FormatFloat(m[name], 'f', -1, 64) + "%"
}

func poolText(m map[string]release.PoolState, name string) string {
	p, ok := m[name]
	if !ok {
		return "(none)"
	}
	s := strings.Join(p.Upstreams, ", ")
	if p.Label != "" {
		s = p.Label + " on " + s
	}
	return s
}

func versionText(m map[string]uint64, name string) string {
	v, ok := m[name]
	if !ok {
		return "(none)"
	}
	return "version " + strconv.FormatUint(v, 10)
}

func migrationText(m map[string]int64, name string) string {
	v, ok := m[name]
	if !ok {
		return "(not read)"
	}
	return "migration " + strconv.FormatInt(v, 10)
}

// stepNames say what each rollback step is for, in the words of its
// place in release.StepOrder.
var stepNames = map[release.StepKind]struct{ Title, Why string }{
	release.StepFlags:   {"Flags back", "users stop seeing the new behaviour first"},
	release.StepTraffic: {"Traffic back", "the previous code serves again, once its pool passed its health checks recently"},
	release.StepConfig:  {"Service configuration back", "the services get their previous configuration"},
	release.StepSchema:  {"Schema down", "the migrations the release applied are rolled down, last, when no live code needs them"},
}

// stepRow is a rollback step for the plan and the rollback's progress.
type stepRow struct {
	release.Step
	N     int
	Title string
	Why   string
	// Plan is what the step does; Refusal, split off it, why the schema
	// step will be refused (a contract or irreversible migration).
	Plan    string
	Refusal string
	Took    string
	Started stamp
}

func stepRows(now time.Time, steps []release.Step) []stepRow {
	out := make([]stepRow, 0, len(steps))
	for i, s := range steps {
		n := stepNames[s.Kind]
		r := stepRow{Step: s, N: i + 1, Title: n.Title, Why: n.Why, Plan: s.Plan, Started: stampOf(now, s.Started)}
		if r.Title == "" {
			r.Title = string(s.Kind)
		}
		// release.planSchema appends the refusal to the step's line; the
		// page shows it where it cannot be missed.
		if plan, why, ok := strings.Cut(s.Plan, " — will be refused: "); ok {
			r.Plan, r.Refusal = plan, why
		}
		if !s.Started.IsZero() && !s.Finished.IsZero() {
			r.Took = took(s.Finished.Sub(s.Started))
		}
		out = append(out, r)
	}
	return out
}

// failedStep is the first failed step, or nil.
func failedStep(steps []stepRow) *stepRow {
	for i := range steps {
		if steps[i].Status == release.StepFailed {
			return &steps[i]
		}
	}
	return nil
}

// timelineRow is a timeline entry for the page.
type timelineRow struct {
	control.TimelineEntry
	What string
	When stamp
	Took string
	// Diff links a deployment version to its diff.
	Diff string
}

// timelineTitle names a timeline entry in words.
func timelineTitle(e control.TimelineEntry) string {
	v := strconv.FormatUint(e.Version, 10)
	switch e.Kind {
	case control.TimelineDeploymentVersion:
		return "deployment version " + v
	case control.TimelineServiceVersion:
		return "service " + e.Service + " version " + v
	case control.TimelineChangeSet:
		return "change set " + e.ChangeSet
	case control.TimelineMigration:
		return "database " + e.Database + " migration " + strconv.FormatInt(e.Migration, 10)
	case control.TimelineEvent:
		if e.Event != "" {
			return strings.ReplaceAll(e.Event, "_", " ")
		}
		return "event"
	case control.TimelineRollbackStep:
		if n, ok := stepNames[e.Step]; ok {
			return "rollback step: " + n.Title
		}
		return "rollback step " + string(e.Step)
	}
	return e.Kind
}

func timelineRows(now time.Time, entries []control.TimelineEntry) []timelineRow {
	out := make([]timelineRow, 0, len(entries))
	for _, e := range entries {
		r := timelineRow{TimelineEntry: e, What: timelineTitle(e), When: stampOf(now, e.Time)}
		if e.Duration > 0 {
			r.Took = took(time.Duration(e.Duration))
		}
		if e.Kind == control.TimelineDeploymentVersion && e.Deployment != "" && e.Version > 0 {
			r.Diff = Prefix + "deployments/" + url.PathEscape(e.Deployment) + "/diff?to=" + strconv.FormatUint(e.Version, 10)
		}
		out = append(out, r)
	}
	return out
}

// Package triage names what is wrong with a deployment and the commands
// that undo it. Analyze is a pure function of plain inputs: the recent
// versions, the windows measured now and before each change, the guard
// policy and a time. It returns the Report the admin API serves at
// GET /api/v1/deployments/{name}/triage and `switchback triage` prints.
//
// A population (a pool, or a flag's on cohort) is failing when it has
// enough requests and is worse than its baseline (the other pools; the
// flag's off cohort): an error rate over the ceiling and twice the
// baseline's, or a p95 over twice the baseline's and slower by at least
// MinSlower with a median over the baseline's p95 (or a p95 over the
// guard's ceiling when one is set). A pool with
// no other pool taking traffic to compare with (after a full flip) has its
// latency compared with the window before the latest change. A pool whose
// errors or slowness a failing flag accounts for is not accused: the flag
// is.
//
// Suspects are ordered so that running their commands top to bottom never
// moves users into a failing population. Turning a flag off keeps every
// user in their pool and moves them to the flag-off cohort, which is
// healthier by the definition of a failing flag, so flags come first. A
// pool's traffic then goes to a pool that is not failing once those flags
// are off and does not fail its health checks.
package triage

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// Recent is how far back Report.Changes goes.
const Recent = time.Hour

// MinSlower is the least a population's p95 must exceed its baseline's by
// to be called slow without a guard p95 ceiling: doubling 2 ms is noise.
const MinSlower = 100 * time.Millisecond

// DefaultErrorRate is the error ceiling (a fraction) when the guard sets
// none, or there is no guard.
const DefaultErrorRate = 0.05

// factor is how much worse than its baseline a population must be.
const factor = 2

// Mark is a deployment's window as it was when a version was applied: the
// figures from before that version.
type Mark struct {
	Version uint64       `json:"version"`
	Applied time.Time    `json:"applied"`
	Window  guard.Window `json:"-"`
}

// Measured is what one gateway instance measured of a deployment.
type Measured struct {
	Instance string
	// Fleet names the instances whose windows Now merges; fewer than two
	// means this instance's own figures.
	Fleet []string
	// Now is the window now.
	Now guard.Window
	// Marks are the windows as they were when recent versions were applied.
	Marks []Mark
	// View is the guard's latest judgement; nil before the first.
	View *guard.View
}

// Input is everything Analyze looks at.
type Input struct {
	// Versions are the deployment's documents, oldest first: every version
	// of the last Recent and the one before them, ending with the current
	// one.
	Versions []configstore.Document
	// Now is the window measured now.
	Now guard.Window
	// Marks are the windows as they were when versions were applied, in
	// any order; a version without one has no "before" figures.
	Marks []Mark
	// Policy is the current version's guard policy (guard.Compile).
	Policy guard.Policy
	// View is the guard's latest judgement, for health, breaches and the
	// cooldown; nil when the instance has none yet.
	View *guard.View
	// Scope says whose measurements these are, such as "instance vm:9180".
	Scope string
	// FleetWide says the windows merge every live instance's.
	FleetWide bool
	// Time is the time of the analysis.
	Time time.Time
}

// Report is the answer of GET .../triage.
type Report struct {
	Deployment string    `json:"deployment"`
	Version    uint64    `json:"version"`
	Time       time.Time `json:"time"`
	// Scope says whose figures these are, and ScopeNote what that means.
	Scope     string           `json:"scope"`
	ScopeNote string           `json:"scope_note"`
	Window    gateway.Duration `json:"window"`
	// Summary is one line: what to do, or that nothing looks wrong.
	Summary string `json:"summary"`
	// Changes are the versions of the last hour, newest first.
	Changes []Change `json:"changes"`
	// Before says which change the "before" figures precede.
	Before *Before       `json:"before,omitempty"`
	Pools  []PoolFigures `json:"pools"`
	Flags  []FlagFigures `json:"flags"`
	Guard  GuardNote     `json:"guard"`
	// Rule states when triage calls a population failing.
	Rule     string    `json:"rule"`
	Suspects []Suspect `json:"suspects"`
	// Restore is one write back to before the suspect changes, offered
	// when several recent changes are suspects.
	Restore *Restore `json:"restore,omitempty"`
}

// Change is one version.
type Change struct {
	Version uint64             `json:"version"`
	Time    time.Time          `json:"time"`
	Author  string             `json:"author"`
	Source  configstore.Source `json:"source"`
	Summary string             `json:"summary"`
	Reason  string             `json:"reason,omitempty"`
}

// Before is the version the "before" figures were measured ahead of.
type Before struct {
	Version uint64    `json:"version"`
	Applied time.Time `json:"applied,omitzero"`
	// Note warns when there are no such figures or the window still
	// mixes traffic from before the change.
	Note string `json:"note,omitempty"`
}

// Figures are one population's window.
type Figures struct {
	Requests  uint64           `json:"requests"`
	Errors    uint64           `json:"errors"`
	ErrorRate float64          `json:"error_rate"` // percent
	P95       gateway.Duration `json:"p95"`
}

func figures(s guard.Stats) Figures {
	return Figures{Requests: s.Requests, Errors: s.Errors, ErrorRate: 100 * s.ErrorRate(), P95: gateway.Duration(s.P95)}
}

// Compare is a population now and before the most recent change.
type Compare struct {
	Now    Figures  `json:"now"`
	Before *Figures `json:"before,omitempty"`
}

// PoolFigures is one pool.
type PoolFigures struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
	Compare
	// Failing states the figures when the pool is failing.
	Failing string `json:"failing,omitempty"`
	// ExplainedBy names the flag that accounts for the pool's failure.
	ExplainedBy string `json:"explained_by,omitempty"`
}

// FlagFigures is one flag's two cohorts.
type FlagFigures struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
	On      Compare `json:"on"`
	Off     Compare `json:"off"`
	Failing string  `json:"failing,omitempty"`
}

// GuardNote says whether a guard is configured and what it does now.
type GuardNote struct {
	Configured bool   `json:"configured"`
	Policy     string `json:"policy"`
	// Would lists what the guard is doing or would do about the failing
	// populations; empty when it has nothing to do.
	Would []string `json:"would,omitempty"`
}

// Suspect is one failing population, what points at it and the command
// that takes users off it.
type Suspect struct {
	Rank    int    `json:"rank"`
	Subject string `json:"subject"` // "flag:NAME" or "pool:NAME"
	// Change is the recent version that raised it, if any.
	Change   *Change  `json:"change,omitempty"`
	Evidence []string `json:"evidence"`
	// Command is the shell command, Args the same as arguments; both empty
	// when there is nothing safe to run (Effect says why).
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// Effect says what the command changes and where its users go.
	Effect string `json:"effect"`
}

// Restore is one atomic write to the last version before the suspect
// changes.
type Restore struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
	// To is the version whose document is written again; Undoes the
	// versions whose changes it takes back.
	To     uint64   `json:"to"`
	Undoes []uint64 `json:"undoes"`
	// Safe is true when the restored document leaves no user in a failing
	// population; Leaves says who it would leave there otherwise.
	Safe   bool     `json:"safe"`
	Leaves []string `json:"leaves,omitempty"`
}

// thresholds are the policy triage judges by.
type thresholds struct {
	errorRate   float64 // fraction
	p95         time.Duration
	minRequests uint64
}

func thresholdsOf(p guard.Policy) thresholds {
	t := thresholds{errorRate: DefaultErrorRate, minRequests: p.MinRequests}
	if p.Configured {
		if p.ErrorRate > 0 {
			t.errorRate = p.ErrorRate
		}
		t.p95 = p.P95
	}
	if t.minRequests == 0 {
		t.minRequests = gateway.DefaultMinRequests
	}
	return t
}

func (t thresholds) rule() string {
	slow := fmt.Sprintf("p95 over %d× its baseline's and %v slower, with its median over the baseline's p95", factor, MinSlower)
	if t.p95 > 0 {
		slow = fmt.Sprintf("p95 over %v and %d× its baseline's", t.p95, factor)
	}
	return fmt.Sprintf("failing: at least %d requests, and error rate over %.1f%% and %d× its baseline's, or %s; "+
		"a pool's baseline is the other pools, a flag's is its off cohort",
		t.minRequests, 100*t.errorRate, factor, slow)
}

// erroring says why s errs against base, or "".
func (t thresholds) erroring(s, base guard.Stats) string {
	if s.Requests < t.minRequests || s.ErrorRate() <= t.errorRate {
		return ""
	}
	if base.Requests >= t.minRequests && s.ErrorRate() <= factor*base.ErrorRate() {
		return ""
	}
	r := fmt.Sprintf("error rate %.1f%% (%d of %d requests)", 100*s.ErrorRate(), s.Errors, s.Requests)
	if base.Requests > 0 {
		r += fmt.Sprintf(" against %.1f%% (%d requests)", 100*base.ErrorRate(), base.Requests)
	}
	return r
}

// slow says why s is slow against base, or "".
func (t thresholds) slow(s, base guard.Stats) string {
	if s.Requests < t.minRequests {
		return ""
	}
	if t.p95 > 0 {
		if s.P95 <= t.p95 || (base.Requests >= t.minRequests && float64(s.P95) <= factor*float64(base.P95)) {
			return ""
		}
	} else if base.Requests < t.minRequests || float64(s.P95) <= factor*float64(base.P95) || s.P95-base.P95 < MinSlower ||
		s.P50 <= base.P95 {
		// Without a ceiling, slowness is the whole population's: its
		// median beyond the baseline's p95. A slow tail in a small
		// population is what a busy machine shows, not a bad release.
		return ""
	}
	r := fmt.Sprintf("p95 %v", s.P95.Round(time.Millisecond))
	if base.Requests > 0 {
		r += fmt.Sprintf(" against %v", base.P95.Round(time.Millisecond))
	}
	return r
}

// verdict is one population's failure, by kind.
type verdict struct{ errs, slow string }

func (v verdict) failing() bool { return v.errs != "" || v.slow != "" }

func (v verdict) String() string {
	return strings.Join(slices.DeleteFunc([]string{v.errs, v.slow}, func(s string) bool { return s == "" }), "; ")
}

// Analyze reads the inputs and returns the report. Versions must hold at
// least the current version.
func Analyze(in Input) Report {
	cur := in.Versions[len(in.Versions)-1]
	cfg := cur.Config
	t := thresholdsOf(in.Policy)
	note := "this gateway instance's figures only: no other instance's summary is fresh (or fleet-wide judgement is off), and other instances may see other traffic"
	if in.FleetWide {
		note = "the fleet's figures: every live instance's window merged, as the guard judges them"
	}
	r := Report{
		Deployment: cfg.Name, Version: cur.Meta.Version, Time: in.Time,
		Scope:     in.Scope,
		ScopeNote: note,
		Window:    gateway.Duration(in.Policy.Window),
		Rule:      t.rule(),
		Changes:   []Change{}, Pools: []PoolFigures{}, Flags: []FlagFigures{}, Suspects: []Suspect{},
	}
	for i := len(in.Versions) - 1; i >= 0; i-- {
		m := in.Versions[i].Meta
		if in.Time.Sub(m.Time) <= Recent {
			r.Changes = append(r.Changes, changeOf(m))
		}
	}
	marks := map[uint64]guard.Window{}
	applied := map[uint64]time.Time{}
	for _, m := range in.Marks {
		marks[m.Version], applied[m.Version] = m.Window, m.Applied
	}
	before, haveBefore := marks[cur.Meta.Version]
	r.Before = &Before{Version: cur.Meta.Version, Applied: applied[cur.Meta.Version]}
	switch {
	case !haveBefore:
		r.Before.Note = fmt.Sprintf("no figures from before v%d: this instance applied it when it started", cur.Meta.Version)
	case in.Time.Sub(applied[cur.Meta.Version]) < in.Policy.Window:
		r.Before.Note = fmt.Sprintf("v%d is %v old, less than the %v window: the figures now still include traffic from before it",
			cur.Meta.Version, in.Time.Sub(applied[cur.Meta.Version]).Round(time.Second), in.Policy.Window)
	}

	pools := sortedKeys(cfg.Pools)
	flags := sortedKeys(cfg.Flags)

	// Flags first: their verdicts explain pools.
	flagV := map[string]verdict{}
	for _, f := range flags {
		c := in.Now.Flags[f]
		ff := FlagFigures{Name: f, Percent: cfg.Flags[f].Percent, On: Compare{Now: figures(c.On)}, Off: Compare{Now: figures(c.Off)}}
		if haveBefore {
			if bc, ok := before.Flags[f]; ok {
				on, off := figures(bc.On), figures(bc.Off)
				ff.On.Before, ff.Off.Before = &on, &off
			}
		}
		v := verdict{errs: t.erroring(c.On, c.Off), slow: t.slow(c.On, c.Off)}
		if v.failing() {
			ff.Failing = v.String()
			// At 0% the failures are from before it was turned off.
			if ff.Percent > 0 {
				flagV[f] = v
			}
		}
		r.Flags = append(r.Flags, ff)
	}
	poolV := map[string]verdict{}
	explained := map[string]string{}
	onPool := map[string][]string{} // flag -> pools it fails in
	// Failing answers are often fast ones: a pool that errs on its own
	// (not through a flag) is no baseline for the others' latency.
	erring := map[string]bool{}
	for _, p := range pools {
		s, base := in.Now.Pools[p], others(in.Now.Pools, p, nil)
		if errs := t.erroring(s, base); errs != "" {
			erring[p] = explainedBy(t, verdict{errs: errs}, s, base, in.Now, flagV, flags) == ""
		}
	}
	for _, p := range pools {
		s := in.Now.Pools[p]
		base := others(in.Now.Pools, p, nil)
		latencyBase := others(in.Now.Pools, p, erring)
		pf := PoolFigures{Name: p, Weight: cfg.Weights[p], Compare: Compare{Now: figures(s)}}
		if haveBefore {
			if bs, ok := before.Pools[p]; ok {
				b := figures(bs)
				pf.Before = &b
			}
		}
		v := verdict{errs: t.erroring(s, base), slow: t.slow(s, latencyBase)}
		if haveBefore && latencyBase.Requests < t.minRequests && v.slow == "" {
			// No other pool takes enough traffic to compare with (after a
			// full flip): the window before the change is the baseline of
			// its latency, the pool's own if it had enough traffic, else
			// the deployment's.
			bs := before.Pools[p]
			if bs.Requests < t.minRequests {
				bs = guard.Merge(statsOf(before.Pools)...)
			}
			if why := t.slow(s, bs); why != "" {
				v.slow = fmt.Sprintf("%s before v%d", why, cur.Meta.Version)
			}
		}
		if v.failing() {
			pf.Failing = v.String()
			if f := explainedBy(t, v, s, latencyBase, in.Now, flagV, flags); f != "" {
				pf.ExplainedBy = f
				explained[p] = f
				onPool[f] = append(onPool[f], p)
			} else if pf.Weight > 0 {
				// At 0% the failures are from before it was taken off.
				poolV[p] = v
			}
		}
		r.Pools = append(r.Pools, pf)
	}

	r.Guard = guardNote(in.Policy, in.View, cfg)
	changes := changesOf(in.Versions)

	// The state the commands lead to, step by step.
	weights := clone(cfg.Weights)
	var suspectVersions []uint64
	var flagNames []string
	for _, f := range flags {
		if _, ok := flagV[f]; ok {
			flagNames = append(flagNames, f)
		}
	}
	sort.SliceStable(flagNames, func(i, j int) bool {
		return severity(in.Now.Flags[flagNames[i]].On) > severity(in.Now.Flags[flagNames[j]].On)
	})
	for _, f := range flagNames {
		c := in.Now.Flags[f]
		s := Suspect{Subject: "flag:" + f}
		s.Evidence = append(s.Evidence, fmt.Sprintf("on cohort (%s): %s; off cohort: %.1f%% errors, p95 %v",
			pct(cfg.Flags[f].Percent), flagV[f], 100*c.Off.ErrorRate(), c.Off.P95.Round(time.Millisecond)))
		if ps := onPool[f]; len(ps) > 0 {
			s.Evidence = append(s.Evidence, fmt.Sprintf("it accounts for the failures of pool %s", strings.Join(ps, ", ")))
		}
		if ch := lastRaise(changes, in.Time, func(b, a gateway.Config) bool {
			_, had := b.Flags[f]
			return a.Flags[f].Percent > b.Flags[f].Percent || (!had && a.Flags[f].Percent > 0)
		}); ch != nil {
			s.Change = ch
			suspectVersions = append(suspectVersions, ch.Version)
			s.Evidence = append(s.Evidence, "raised by "+describeChange(*ch))
			if bw, ok := marks[ch.Version]; ok {
				bc := bw.Flags[f]
				s.Evidence = append(s.Evidence, fmt.Sprintf("before v%d its on cohort had %.1f%% errors, p95 %v (%d requests)",
					ch.Version, 100*bc.On.ErrorRate(), bc.On.P95.Round(time.Millisecond), bc.On.Requests))
			}
		}
		s.Args = []string{"switchback", "flag", cfg.Name, f, "0", "--reason", "triage: flag " + f + " cohort failing"}
		s.Effect = fmt.Sprintf("%s %s → 0%%: its users stay in their pool, without the flag", f, pct(cfg.Flags[f].Percent))
		r.Suspects = append(r.Suspects, s)
	}

	var poolNames []string
	for _, p := range pools {
		if _, ok := poolV[p]; ok {
			poolNames = append(poolNames, p)
		}
	}
	sort.SliceStable(poolNames, func(i, j int) bool {
		return severity(in.Now.Pools[poolNames[i]]) > severity(in.Now.Pools[poolNames[j]])
	})
	var health map[string]guard.PoolHealth
	if in.View != nil {
		health = in.View.Health
	}
	for _, p := range poolNames {
		s := Suspect{Subject: "pool:" + p}
		rel := ""
		if r := cfg.Pools[p].Release; r != "" {
			rel = " (release " + r + ")"
		}
		s.Evidence = append(s.Evidence, fmt.Sprintf("pool %s%s at %s: %s", p, rel, pct(cfg.Weights[p]), poolV[p]))
		if ch := lastRaise(changes, in.Time, func(b, a gateway.Config) bool {
			return a.Weights[p] > b.Weights[p] || !slices.Equal(a.Pools[p].Upstreams, b.Pools[p].Upstreams) ||
				a.Pools[p].Release != b.Pools[p].Release
		}); ch != nil {
			s.Change = ch
			suspectVersions = append(suspectVersions, ch.Version)
			s.Evidence = append(s.Evidence, "raised or changed by "+describeChange(*ch))
			if bw, ok := marks[ch.Version]; ok {
				bs := bw.Pools[p]
				s.Evidence = append(s.Evidence, fmt.Sprintf("before v%d it had %.1f%% errors, p95 %v (%d requests)",
					ch.Version, 100*bs.ErrorRate(), bs.P95.Round(time.Millisecond), bs.Requests))
			}
		}
		target, why := fallbackTarget(pools, p, weights, poolV, health, cur.Retained, in.Now)
		if target == "" {
			s.Effect = "no command: " + why + "; restore an earlier version or fix the pool"
			r.Suspects = append(r.Suspects, s)
			continue
		}
		moved := weights[p]
		from := clone(weights)
		weights[target] += moved
		weights[p] = 0
		s.Args = append([]string{"switchback", "weights", cfg.Name}, weightArgs(pools, weights)...)
		s.Args = append(s.Args, "--reason", "triage: pool "+p+" failing")
		ts := in.Now.Pools[target]
		state := fmt.Sprintf("%.1f%% errors, p95 %v", 100*ts.ErrorRate(), ts.P95.Round(time.Millisecond))
		if ts.Requests == 0 {
			state = "no traffic in the window"
		}
		if f := explained[target]; f != "" {
			state += ", failing only through flag " + f + ", off above"
		}
		if h, ok := health[target]; ok && h.Healthy {
			state += ", health checks pass"
		}
		s.Effect = fmt.Sprintf("%s %s → 0%%, %s %s → %s: %s's users move to %s (%s)",
			p, pct(from[p]), target, pct(from[target]), pct(weights[target]), p, target, state)
		r.Suspects = append(r.Suspects, s)
	}
	for i := range r.Suspects {
		r.Suspects[i].Rank = i + 1
		if r.Suspects[i].Args != nil {
			r.Suspects[i].Command = shellJoin(r.Suspects[i].Args)
		}
	}
	r.Restore = restoreOf(in.Versions, suspectVersions, flagV, poolV)
	r.Summary = summary(r)
	if len(r.Suspects) == 0 {
		// Pools failing alike are no pool's fault: say so rather than
		// "nothing is failing".
		all := guard.Merge(statsOf(in.Now.Pools)...)
		if all.Requests >= t.minRequests && all.ErrorRate() > t.errorRate {
			r.Summary = fmt.Sprintf("every pool fails alike (%.1f%% errors over %d requests): no pool or flag stands out; "+
				"look at what they share, or at the changes below", 100*all.ErrorRate(), all.Requests)
		}
	}
	return r
}

func statsOf(m map[string]guard.Stats) []guard.Stats {
	out := make([]guard.Stats, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// explainedBy names a failing flag that accounts for a pool's failure: the
// flag's off cohort, which holds the pool's flag-off traffic, is healthy
// by the same measure. For errors the bound is exact: all the off cohort's
// errors, were they all in this pool, would still leave its flag-off share
// under the ceiling.
// base is the pool's latency baseline.
func explainedBy(t thresholds, v verdict, s, base guard.Stats, now guard.Window, flagV map[string]verdict, flags []string) string {
	for _, f := range flags {
		fv, ok := flagV[f]
		if !ok {
			continue
		}
		c := now.Flags[f]
		all := c.On.Requests + c.Off.Requests
		if all == 0 {
			continue
		}
		ok = true
		if v.errs != "" {
			offShare := float64(c.Off.Requests) / float64(all)
			offHere := offShare * float64(s.Requests)
			ok = fv.errs != "" && (offHere == 0 || float64(c.Off.Errors)/offHere <= t.errorRate)
		}
		if ok && v.slow != "" {
			ok = fv.slow != "" && t.slow(c.Off, base) == ""
		}
		if ok {
			return f
		}
	}
	return ""
}

// fallbackTarget picks where a failing pool's users go: a pool that is not
// failing on its own (one a flag above accounts for is fine once the flag
// is off) and passes its health checks, with the most weight, then name
// order.
func fallbackTarget(pools []string, bad string, weights map[string]float64, poolV map[string]verdict,
	health map[string]guard.PoolHealth, retained map[string]time.Time, now guard.Window) (string, string) {
	var best string
	var refused []string
	for _, q := range pools {
		if q == bad {
			continue
		}
		if _, failing := poolV[q]; failing {
			refused = append(refused, q+" is failing too")
			continue
		}
		if h, ok := health[q]; ok && !h.Healthy {
			refused = append(refused, fmt.Sprintf("%s fails its health checks (%s)", q, h.Error))
			continue
		}
		if weights[q] == 0 && now.Pools[q].Requests == 0 {
			if _, ret := retained[q]; !ret {
				if _, checked := health[q]; !checked {
					refused = append(refused, q+" takes no traffic and is neither retained nor health checked")
					continue
				}
			}
		}
		if best == "" || weights[q] > weights[best] {
			best = q
		}
	}
	if best == "" {
		return "", "no pool to move its users to: " + strings.Join(refused, "; ")
	}
	return best, ""
}

// restoreOf offers one write back to before the earliest suspect change,
// when two or more different recent changes are suspects.
func restoreOf(versions []configstore.Document, suspects []uint64, flagV, poolV map[string]verdict) *Restore {
	slices.Sort(suspects)
	suspects = slices.Compact(suspects)
	if len(suspects) < 2 {
		return nil
	}
	first := suspects[0]
	var to *configstore.Document
	var undoes []uint64
	for i := range versions {
		v := versions[i].Meta.Version
		if v < first {
			to = &versions[i]
		} else {
			undoes = append(undoes, v)
		}
	}
	if to == nil {
		return nil
	}
	cur := versions[len(versions)-1].Config
	res := &Restore{To: to.Meta.Version, Undoes: undoes}
	res.Args = []string{"switchback", "restore", cur.Name, "--before-version", strconv.FormatUint(first, 10),
		"--reason", fmt.Sprintf("triage: undo v%d to v%d", first, undoes[len(undoes)-1])}
	res.Command = shellJoin(res.Args)
	for _, f := range sortedKeys(flagV) {
		if p := to.Config.Flags[f].Percent; p > 0 {
			res.Leaves = append(res.Leaves, fmt.Sprintf("v%d still has flag %s at %s, and its cohort fails", to.Meta.Version, f, pct(p)))
		}
	}
	for _, p := range sortedKeys(poolV) {
		if w := to.Config.Weights[p]; w > 0 {
			res.Leaves = append(res.Leaves, fmt.Sprintf("v%d still sends %s of users to pool %s, which fails", to.Meta.Version, pct(w), p))
		}
	}
	res.Safe = len(res.Leaves) == 0
	return res
}

func summary(r Report) string {
	n := 0
	for _, s := range r.Suspects {
		if s.Command != "" {
			n++
		}
	}
	switch {
	case len(r.Suspects) == 0:
		return "nothing is failing in this window"
	case n == 0:
		return fmt.Sprintf("%d failing, and no safe command to move users: see the suspects", len(r.Suspects))
	case n == 1:
		return "1 suspect: run its command"
	}
	return fmt.Sprintf("%d suspects: run their commands in this order", n)
}

func guardNote(p guard.Policy, v *guard.View, cfg gateway.Config) GuardNote {
	if !p.Configured {
		return GuardNote{Policy: "no guard configured: nothing falls back automatically; the suspects below come from triage's own rule"}
	}
	var over []string
	if p.ErrorRate > 0 {
		over = append(over, fmt.Sprintf("error rate > %.1f%%", 100*p.ErrorRate))
	}
	if p.P95 > 0 {
		over = append(over, "p95 > "+p.P95.String())
	}
	g := GuardNote{Configured: true, Policy: fmt.Sprintf("falls back on %s over %v (at least %d requests", strings.Join(over, " or "), p.Window, p.MinRequests)}
	if p.Baseline > 0 {
		g.Policy += fmt.Sprintf(", and %g× the baseline", p.Baseline)
	}
	g.Policy += ")"
	if v == nil {
		return g
	}
	cooling := ""
	if !v.Cooldown.IsZero() {
		cooling = " after its cooldown ends at " + v.Cooldown.UTC().Format(time.RFC3339)
	}
	for _, f := range sortedKeys(v.Flags) {
		if b := v.Flags[f].On.Breach; b != "" {
			g.Would = append(g.Would, fmt.Sprintf("sets flag %s to 0%%%s (%s)", f, cooling, b))
		}
	}
	for _, p := range sortedKeys(v.Pools) {
		pv := v.Pools[p]
		switch {
		case pv.Refused != "":
			g.Would = append(g.Would, fmt.Sprintf("leaves pool %s as it is: %s", p, pv.Refused))
		case pv.Breach != "" && cfg.Weights[p] > 0:
			g.Would = append(g.Would, fmt.Sprintf("moves pool %s's traffic%s (%s)", p, cooling, pv.Breach))
		}
	}
	return g
}

// changeStep is one version and the one before it.
type changeStep struct {
	before, after configstore.Document
}

func changesOf(versions []configstore.Document) []changeStep {
	var out []changeStep
	for i := 1; i < len(versions); i++ {
		out = append(out, changeStep{versions[i-1], versions[i]})
	}
	return out
}

// lastRaise is the newest recent change for which raised holds.
func lastRaise(steps []changeStep, now time.Time, raised func(before, after gateway.Config) bool) *Change {
	for i := len(steps) - 1; i >= 0; i-- {
		st := steps[i]
		if now.Sub(st.after.Meta.Time) > Recent {
			break
		}
		if raised(st.before.Config, st.after.Config) {
			c := changeOf(st.after.Meta)
			return &c
		}
	}
	return nil
}

func changeOf(m configstore.Meta) Change {
	return Change{Version: m.Version, Time: m.Time, Author: m.Author, Source: m.Source, Summary: m.Summary, Reason: m.Reason}
}

func describeChange(c Change) string {
	s := fmt.Sprintf("v%d at %s by %s", c.Version, c.Time.UTC().Format("15:04:05Z"), c.Author)
	if c.Summary != "" {
		s += ": " + c.Summary
	}
	if c.Reason != "" {
		s += fmt.Sprintf(" (%q)", c.Reason)
	}
	return s
}

// others merges every pool's window but name's and those skipped.
func others(pools map[string]guard.Stats, name string, skip map[string]bool) guard.Stats {
	var rest []guard.Stats
	for p, s := range pools {
		if p != name && !skip[p] {
			rest = append(rest, s)
		}
	}
	return guard.Merge(rest...)
}

// severity orders suspects: errors weigh by their rate, slowness by its
// seconds.
func severity(s guard.Stats) float64 { return s.ErrorRate() + s.P95.Seconds() }

func weightArgs(pools []string, w map[string]float64) []string {
	out := make([]string, 0, len(pools))
	for _, p := range pools {
		out = append(out, p+"="+strconv.FormatFloat(w[p], 'f', -1, 64))
	}
	return out
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

func clone(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// shellJoin quotes args for a POSIX shell.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=.,/:@%+", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

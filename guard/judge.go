package guard

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

// Input is everything one judgement of a deployment looks at. Judge reads
// it and nothing else, so every rule can be tested with a built window and
// a chosen time.
type Input struct {
	// Snapshot is the live version being judged.
	Snapshot *gateway.Snapshot
	// Policy is Compile(Snapshot.Guard()), compiled once per snapshot.
	Policy Policy
	// Window is the meters' figures (Registry.Stats).
	Window Window
	// Health is the active health of the checked pools; a pool missing here
	// is not checked.
	Health map[string]PoolHealth
	// Retained maps each rollback-target pool to the end of its retention;
	// on a tie for traffic, the fallback prefers a retained pool.
	Retained map[string]time.Time
	// LastFallback is when the deployment's last guard version was written,
	// by any instance; zero if never. The cooldown runs from it.
	LastFallback time.Time
	// LastRefusal is when this instance last reported a refused fallback;
	// reports repeat at most once per cooldown.
	LastRefusal time.Time
	// Criteria are the external criteria's latest samples; only the
	// elected instance probes them, so elsewhere this is empty.
	Criteria []CriterionState
	// Change is the deployment's newest change a criterion's breach may
	// roll back (ChangeOf), if any; the caller looks it up in the history
	// while a criterion breaches.
	Change *Change
	// Fleet names the other instances whose summaries Window merges;
	// LeftOut those whose summaries were too old, with their time.
	Fleet   []string
	LeftOut map[string]time.Time
	// PeerCriteria are the criteria as another instance (the elected one)
	// published them: shown when this one does not probe them, never
	// acted on.
	PeerCriteria map[string]CriterionView
	// Instance names this gateway in the view.
	Instance string
	// Now is the time of the judgement.
	Now time.Time
}

// View is what one instance's guard sees of a deployment: the answer of
// GET /api/v1/deployments/{name}/guard.
type View struct {
	Deployment string `json:"deployment"`
	Instance   string `json:"instance"`
	Version    uint64 `json:"version"`
	// Guard is false when the deployment has no guard block: the figures
	// are measured but nothing is judged and nothing falls back; Note says
	// so.
	Guard bool   `json:"guard"`
	Note  string `json:"note,omitempty"`
	// Window is what the figures are measured over.
	Window gateway.Duration               `json:"window"`
	Pools  map[string]Population          `json:"pools"`
	Flags  map[string]Cohorts[Population] `json:"flags,omitempty"`
	Health map[string]PoolHealth          `json:"health,omitempty"`
	// Fleet names the other instances whose windows are merged into the
	// figures; LeftOut those left out because their summary is too old.
	Fleet   []string             `json:"fleet,omitempty"`
	LeftOut map[string]time.Time `json:"left_out,omitempty"`
	// Criteria are the external criteria, on the instance that probes
	// them (the elected one).
	Criteria map[string]CriterionView `json:"criteria,omitempty"`
	// Retained maps each rollback-target pool to the end of its retention.
	Retained map[string]time.Time `json:"retained,omitempty"`
	// Cooldown is set while no fallback may be written.
	Cooldown time.Time `json:"cooldown_until,omitzero"`
	Updated  time.Time `json:"updated"`
}

// NoGuardNote is View.Note for a deployment without a guard.
const NoGuardNote = "no guard configured: figures only, nothing is judged and nothing falls back"

// Population is one pool's or flag cohort's window and verdict.
type Population struct {
	Requests  uint64           `json:"requests"`
	Errors    uint64           `json:"errors"`
	ErrorRate float64          `json:"error_rate"` // percent
	P50       gateway.Duration `json:"p50"`
	P95       gateway.Duration `json:"p95"`
	P99       gateway.Duration `json:"p99"`
	// Breach states the figures when the population is over the policy.
	Breach string `json:"breach,omitempty"`
	// Waiting says why no verdict was reached yet.
	Waiting string `json:"waiting,omitempty"`
	// Refused says why a breaching pool's traffic was not moved.
	Refused string `json:"refused,omitempty"`
}

func population(s Stats, v Verdict) Population {
	return Population{
		Requests: s.Requests, Errors: s.Errors, ErrorRate: 100 * s.ErrorRate(),
		P50: gateway.Duration(s.P50), P95: gateway.Duration(s.P95), P99: gateway.Duration(s.P99),
		Breach: v.Reason, Waiting: v.Wait,
	}
}

// ActionKind is what a judgement asks to be written.
type ActionKind uint8

// Action kinds; their strings are the kinds of the events that record them.
const (
	// None: nothing to write.
	None ActionKind = iota
	// Fallback moves a breaching pool's weight to Target.
	Fallback
	// FlagOff sets a breaching flag to 0%.
	FlagOff
	// Refused reports that a breaching pool's traffic has nowhere to go.
	Refused
	// Revert rolls back the change (Action.Change) an external
	// criterion's breach blames.
	Revert
	// CriterionBreach reports an external criterion's breach with no
	// recent change to roll back.
	CriterionBreach
)

func (k ActionKind) String() string {
	switch k {
	case Fallback:
		return "fallback"
	case FlagOff:
		return "flag_off"
	case Refused:
		return "fallback_refused"
	case Revert:
		return "criterion_rollback"
	case CriterionBreach:
		return "criterion_breach"
	}
	return "none"
}

// Action is what the judgement asks the caller to write.
type Action struct {
	Kind ActionKind
	// Subject is the population, "pool:NAME" or "flag:NAME", or the
	// external criterion, "criterion:NAME".
	Subject string
	// Name is the pool, flag or criterion, without its kind.
	Name string
	// Target is the pool that takes the traffic of a Fallback.
	Target string
	// Change is what a Revert undoes.
	Change *Change
	// Reason gives the figures and what is done, or why nothing is.
	Reason string
	// Version is the version judged: the write goes on top of it, so a
	// write that lost to another instance's does nothing.
	Version uint64
}

// Apply edits the judged version's document into the fallback's; it is
// the mutation passed to the store's compare-and-swap update.
func (a Action) Apply(c *gateway.Config) error {
	switch a.Kind {
	case Fallback:
		c.Weights[a.Target] += c.Weights[a.Name]
		c.Weights[a.Name] = 0
	case FlagOff:
		f, ok := c.Flags[a.Name]
		if !ok {
			return fmt.Errorf("flag %q is gone", a.Name)
		}
		f.Percent = 0
		c.Flags[a.Name] = f
	case Revert:
		return a.Change.undo(c)
	default:
		return fmt.Errorf("action %v writes nothing", a.Kind)
	}
	return nil
}

// Judge looks at one deployment and returns what its guard sees and what
// to write. Flags are judged before pools: a bad flag shows in every pool
// it runs in, and switching it off is the narrower fix. At most one action
// is returned; a fallback or flag-off takes precedence over a refusal, and
// none is written during the cooldown.
func Judge(in Input) (View, Action) {
	snap, p, w := in.Snapshot, in.Policy, in.Window
	view := View{
		Deployment: snap.Name(), Instance: in.Instance, Version: snap.Version(), Updated: in.Now,
		Guard: p.Configured, Window: gateway.Duration(p.Window),
		Pools: map[string]Population{}, Health: in.Health, Retained: in.Retained,
		Fleet: in.Fleet, LeftOut: in.LeftOut,
	}
	if !p.Configured {
		view.Note = NoGuardNote
	}
	var cooldownUntil time.Time
	if !in.LastFallback.IsZero() {
		cooldownUntil = in.LastFallback.Add(p.Cooldown)
	}
	cooling := p.Configured && cooldownUntil.After(in.Now)
	if cooling {
		view.Cooldown = cooldownUntil
	}

	var write, refusal Action
	for i, f := range snap.FlagNames() {
		cohorts := w.Flags[f]
		var v Verdict
		if pct := snap.FlagPercent(i); p.Configured && pct > 0 {
			v = p.Check(cohorts.On, cohorts.Off, pct < gateway.Buckets)
		}
		if view.Flags == nil {
			view.Flags = map[string]Cohorts[Population]{}
		}
		view.Flags[f] = Cohorts[Population]{On: population(cohorts.On, v), Off: population(cohorts.Off, Verdict{})}
		if v.Breach && write.Kind == None {
			write = Action{Kind: FlagOff, Subject: "flag:" + f, Name: f, Reason: v.Reason + "; flag set to 0%"}
		}
	}
	pools := snap.Pools()
	for _, pool := range pools {
		var v Verdict
		if p.Configured && pool.Weight > 0 {
			v = p.Check(againstOthers(pools, pool.Name, w))
		}
		pv := population(w.Pools[pool.Name], v)
		if v.Breach {
			target, why := fallbackTarget(pools, pool.Name, in.Health, in.Retained, w, p)
			switch {
			case target != "" && write.Kind == None:
				write = Action{Kind: Fallback, Subject: "pool:" + pool.Name, Name: pool.Name, Target: target,
					Reason: v.Reason + "; traffic to " + target}
			case target == "":
				pv.Refused = why
				if refusal.Kind == None && write.Kind == None {
					refusal = Action{Kind: Refused, Subject: "pool:" + pool.Name, Name: pool.Name,
						Reason: v.Reason + "; not moving traffic: " + why}
				}
			}
		}
		view.Pools[pool.Name] = pv
	}

	// The proxy's own figures name the culprit; an external criterion
	// only blames the newest change, so it comes after them.
	crit := judgeCriteria(in, &view)
	if view.Criteria == nil && len(in.PeerCriteria) > 0 {
		view.Criteria = in.PeerCriteria
	}
	if write.Kind == None && crit.Kind == Revert {
		write = crit
	}
	if refusal.Kind == None && write.Kind == None && crit.Kind == CriterionBreach {
		refusal = crit
	}
	act := Action{}
	switch {
	case write.Kind != None && !cooling:
		act = write
	case refusal.Kind != None && in.Now.Sub(in.LastRefusal) >= p.Cooldown:
		act = refusal
	}
	act.Version = snap.Version()
	return view, act
}

// againstOthers is a pool's figures, its baseline (the other pools
// together) and whether any of them takes traffic: after a full flip none
// does, and the absolute ceilings decide alone.
func againstOthers(pools []gateway.PoolInfo, name string, w Window) (Stats, Stats, bool) {
	var others []Stats
	live := false
	for _, q := range pools {
		if q.Name != name {
			others = append(others, w.Pools[q.Name])
			live = live || q.Weight > 0
		}
	}
	return w.Pools[name], Merge(others...), live
}

// fallbackTarget picks the pool a breaching pool's traffic goes to: one
// that does not fail its active health checks and is not over the ceilings
// itself, preferring the most traffic, then a retained rollback target,
// then name order. It returns "" and why when there is none.
func fallbackTarget(pools []gateway.PoolInfo, bad string, health map[string]PoolHealth, retained map[string]time.Time, w Window, p Policy) (string, string) {
	type cand struct {
		name     string
		weight   uint32
		retained bool
	}
	var cands []cand
	var refused []string
	for _, q := range pools {
		if q.Name == bad {
			continue
		}
		if h, ok := health[q.Name]; ok && !h.Healthy {
			refused = append(refused, fmt.Sprintf("%s fails its health checks (%s)", q.Name, h.Error))
			continue
		}
		if v := p.Check(w.Pools[q.Name], Stats{}, false); v.Breach && q.Weight > 0 {
			refused = append(refused, fmt.Sprintf("%s is failing too (%s)", q.Name, v.Reason))
			continue
		}
		_, ret := retained[q.Name]
		cands = append(cands, cand{q.Name, q.Weight, ret})
	}
	if len(cands) == 0 {
		// A deployment has at least two pools, so each was refused.
		return "", strings.Join(refused, "; ")
	}
	// pools is in name order, so a stable sort keeps name order on ties.
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].weight != cands[j].weight {
			return cands[i].weight > cands[j].weight
		}
		return cands[i].retained && !cands[j].retained
	})
	return cands[0].name, ""
}

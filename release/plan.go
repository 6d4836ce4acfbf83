package release

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Now is the state a rollback is planned against: what is live, and what
// each database's down would undo.
type Now struct {
	// State is everything a release can change, as it is now.
	State
	// Undo lists, per database whose version is above the release's
	// Before, the migrations a down to Before would undo, newest first.
	Undo map[string][]Migration
	// Refused says, per database, why its down is refused (a migration is
	// irreversible or a contract); absent when the down is allowed.
	Refused map[string]string
	// Reverted maps each change set of the release already reverted to the
	// change set that reverted it.
	Reverted map[string]string
}

// Migration is one applied migration as the planner and the gate see it.
type Migration struct {
	Version      int64  `json:"version"`
	File         string `json:"file"`
	Contract     bool   `json:"contract,omitempty"`
	Irreversible bool   `json:"irreversible,omitempty"`
}

// PlanOptions qualify a rollback plan.
type PlanOptions struct {
	// RestoreData restores the data snapshots after the schema's down.
	RestoreData bool
	// Force overwrites what changed since the release (a flag or a
	// service someone else edited) instead of leaving it alone, and
	// passes the compatibility gate and the health check.
	Force bool
}

// PlanRollback computes the steps, in StepOrder, that return what r
// changed to r.Before, from the state now. Each step says in Plan what it
// will do; a step with nothing to undo is StepSkipped. What changed since
// the release (someone else moved the same flag, edited the same service)
// is named in the step's Drift and left alone unless o.Force; traffic is
// the exception: it goes back to Before whatever happened since, since
// that is what a rollback is for, and the drift is still reported. An
// open release (no After yet) is rolled back from the state now.
func PlanRollback(r Release, now Now, o PlanOptions) []Step {
	after := now.State
	if r.After != nil {
		after = *r.After
	}
	steps := make([]Step, 0, len(StepOrder))
	for _, kind := range StepOrder {
		var s Step
		switch kind {
		case StepFlags:
			s = planFlags(r.Before, after, now.State, o.Force)
		case StepTraffic:
			s = planTraffic(r.Before, after, now.State, o.Force)
		case StepConfig:
			s = planConfig(r.Before, after, now, o.Force)
		case StepSchema:
			s = planSchema(r.Before, now, o.RestoreData)
		}
		s.Kind = kind
		if s.Status == "" {
			s.Status = StepPending
		}
		steps = append(steps, s)
	}
	return steps
}

// Undoes reports whether any step of a plan has something to do.
func Undoes(steps []Step) bool {
	return slices.ContainsFunc(steps, func(s Step) bool { return s.Status != StepSkipped })
}

func skipped(why string, drift []string) Step {
	return Step{Status: StepSkipped, Plan: why, Drift: drift}
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

func planFlags(before, after, now State, force bool) Step {
	var s Step
	var did []string
	for _, name := range sortedKeys(before.Flags, after.Flags) {
		b, inB := before.Flags[name]
		a, inA := after.Flags[name]
		if inA == inB && a == b {
			continue // the release did not touch it
		}
		n, inN := now.Flags[name]
		if inN == inB && n == b {
			continue // back already
		}
		if inN != inA || n != a {
			msg := fmt.Sprintf("flag %s changed since the release: it left it at %s, it is now %s", name, flagPct(a, inA), flagPct(n, inN))
			if !force {
				s.Drift = append(s.Drift, msg+"; left alone (--force sets it back to "+flagPct(b, inB)+")")
				continue
			}
			s.Drift = append(s.Drift, msg+"; set back anyway (--force)")
		}
		if inB {
			if s.Flags == nil {
				s.Flags = map[string]float64{}
			}
			s.Flags[name] = b
			did = append(did, fmt.Sprintf("%s %s → %s", name, flagPct(n, inN), pct(b)))
		} else {
			s.RemoveFlags = append(s.RemoveFlags, name)
			did = append(did, fmt.Sprintf("remove %s (the release created it)", name))
		}
	}
	if len(did) == 0 {
		return skipped("no flag to set back: the release changed none, or they are back already", s.Drift)
	}
	s.Plan = "flags back to their previous percentages in one deployment version: " + strings.Join(did, ", ")
	return s
}

func flagPct(v float64, ok bool) string {
	if !ok {
		return "absent"
	}
	return pct(v)
}

func planTraffic(before, after, now State, force bool) Step {
	var s Step
	var did []string
	if !sameWeights(after.Weights, now.Weights) {
		s.Drift = append(s.Drift, fmt.Sprintf("traffic changed since the release: it left %s, it is now %s; going back to %s anyway",
			weights(after.Weights), weights(now.Weights), weights(before.Weights)))
	}
	if !sameWeights(before.Weights, now.Weights) {
		s.Weights = maps.Clone(before.Weights)
		did = append(did, fmt.Sprintf("weights %s → %s", weights(now.Weights), weights(before.Weights)))
	}
	for _, pool := range sortedKeys(after.Pools, nil) {
		b, inB := before.Pools[pool]
		a := after.Pools[pool]
		n, inN := now.Pools[pool]
		if !inB || samePool(a, b) || (inN && samePool(n, b)) {
			continue
		}
		if !inN || !samePool(n, a) {
			msg := fmt.Sprintf("pool %s changed since the release: it left %s, it is now %s", pool, poolText(a), poolText(n))
			if !force || !inN {
				s.Drift = append(s.Drift, msg+"; left alone (--force puts back "+poolText(b)+")")
				continue
			}
			s.Drift = append(s.Drift, msg+"; put back anyway (--force)")
		}
		if s.Pools == nil {
			s.Pools = map[string]PoolState{}
		}
		s.Pools[pool] = b
		did = append(did, fmt.Sprintf("pool %s back to %s", pool, poolText(b)))
	}
	for _, pool := range sortedKeys(before.Weights, nil) {
		b, inB := before.Pools[pool]
		n, inN := now.Pools[pool]
		_, putBack := s.Pools[pool]
		if before.Weights[pool] <= now.Weights[pool] || !inB || !inN || putBack || samePool(n, b) {
			continue
		}
		// Not the release's change, so not the rollback's to undo: the
		// way back now runs other code, which the operator must know.
		s.Drift = append(s.Drift, fmt.Sprintf("pool %s, which takes traffic back, changed since the release started: it ran %s, it runs %s now; traffic goes to what it runs now",
			pool, poolText(b), poolText(n)))
	}
	if len(did) == 0 {
		return skipped("traffic is as before the release: "+weights(now.Weights), s.Drift)
	}
	s.Plan = strings.Join(did, "; ") + ", in one deployment version, once the pools taking traffic back passed their health checks recently"
	return s
}

func sameWeights(a, b map[string]float64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func weights(w map[string]float64) string {
	parts := make([]string, 0, len(w))
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, k+" "+pct(w[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func samePool(a, b PoolState) bool {
	return a.Label == b.Label && slices.Equal(a.Upstreams, b.Upstreams)
}

func poolText(p PoolState) string {
	s := strings.Join(p.Upstreams, " ")
	if p.Label != "" {
		s += " (" + p.Label + ")"
	}
	return s
}

func planConfig(before, after State, now Now, force bool) Step {
	var s Step
	var did []string
	for _, id := range slices.Backward(after.ChangeSets) {
		if by, ok := now.Reverted[id]; ok {
			s.Drift = append(s.Drift, fmt.Sprintf("change set %s was reverted already by %s", id, by))
			continue
		}
		s.ChangeSets = append(s.ChangeSets, id)
		did = append(did, "revert change set "+id)
	}
	for _, name := range sortedKeys(after.Services, nil) {
		a := after.Services[name]
		b, inB := before.Services[name]
		if inB && a == b {
			continue
		}
		if !inB {
			s.Drift = append(s.Drift, fmt.Sprintf("service %s was created by the release; left as it is (a rollback deletes no service)", name))
			continue
		}
		n := now.Services[name]
		if n == b {
			continue
		}
		if n != a {
			msg := fmt.Sprintf("service %s changed since the release: it left version %d, it is now at %d", name, a, n)
			if !force {
				s.Drift = append(s.Drift, msg+fmt.Sprintf("; left alone (--force restores version %d)", b))
				continue
			}
			s.Drift = append(s.Drift, msg+"; restored anyway (--force)")
		}
		if s.Services == nil {
			s.Services = map[string]uint64{}
		}
		s.Services[name] = b
		did = append(did, fmt.Sprintf("service %s back to the content of version %d", name, b))
	}
	if len(did) == 0 {
		return skipped("no service configuration to revert", s.Drift)
	}
	s.Plan = strings.Join(did, "; ")
	return s
}

func planSchema(before State, now Now, restoreData bool) Step {
	var s Step
	var did []string
	for _, db := range sortedKeys(now.Undo, nil) {
		undo := now.Undo[db]
		to, ok := before.Databases[db]
		if !ok || len(undo) == 0 {
			continue
		}
		if s.Databases == nil {
			s.Databases = map[string]int64{}
		}
		s.Databases[db] = to
		files := make([]string, len(undo))
		for i, m := range undo {
			files[i] = m.File
		}
		line := fmt.Sprintf("database %s down to version %d, undoing %s", db, to, strings.Join(files, ", "))
		if restoreData {
			line += ", then restore its data snapshots"
		}
		if why := now.Refused[db]; why != "" {
			line += " — will be refused: " + why
		}
		did = append(did, line)
	}
	if len(did) == 0 {
		return skipped("no migration to roll down", nil)
	}
	s.Plan = strings.Join(did, "; ")
	s.RestoreData = restoreData
	return s
}

func sortedKeys[V any](a, b map[string]V) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return slices.Sorted(maps.Keys(keys))
}

package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// guardTick is how often the evaluator looks at the deployments; each one
// advances and is judged once per slot (window/guard.Slots, 250 ms with the
// default 10 s window).
const guardTick = 25 * time.Millisecond

// guardState is the evaluator's memory of one deployment on this instance.
type guardState struct {
	checker     *guard.Checker
	stopChecker context.CancelFunc
	checkerDone chan struct{}
	healthSnap  *gateway.Snapshot // snapshot the checker was last configured from
	nextSlot    time.Time         // when the meters advance next
	lastRefusal time.Time         // rate-limits "target unhealthy" events

	// mu protects view, read by the admin API.
	mu   sync.Mutex
	view GuardView
}

// GuardView is what the admin API shows of a deployment's guard on this
// instance: the window's figures, the verdicts, and active health.
type GuardView struct {
	Instance string                       `json:"instance"`
	Version  uint64                       `json:"version"`
	Pools    map[string]PopulationView    `json:"pools"`
	Flags    map[string][2]PopulationView `json:"flags,omitempty"` // [off, on]
	Health   map[string]guard.PoolHealth  `json:"health,omitempty"`
	Retained map[string]time.Time         `json:"retained,omitempty"`
	Cooldown time.Time                    `json:"cooldown_until,omitzero"`
	Updated  time.Time                    `json:"updated"`
}

// PopulationView is one pool's or cohort's window.
type PopulationView struct {
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"` // percent
	P50       string  `json:"p50"`
	P95       string  `json:"p95"`
	P99       string  `json:"p99"`
	Breach    string  `json:"breach,omitempty"`
}

func populationView(s guard.Stats, v guard.Verdict) PopulationView {
	return PopulationView{
		Requests: s.Requests, Errors: s.Errors, ErrorRate: 100 * s.ErrorRate(),
		P50: s.P50.String(), P95: s.P95.String(), P99: s.P99.String(), Breach: v.Reason,
	}
}

// runGuards is the evaluator goroutine; it stops with ctx.
func (a *App) runGuards(ctx context.Context) {
	t := time.NewTicker(guardTick)
	defer t.Stop()
	defer func() {
		a.guardsMu.Lock()
		defer a.guardsMu.Unlock()
		for name, st := range a.guards {
			st.stopChecker()
			<-st.checkerDone
			delete(a.guards, name)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			// Collect first: judging may write to etcd, which must not
			// happen under the deployments pool's lock.
			entries := map[string]deploymentEntry{}
			deployments.Range(func(k, v any) bool {
				entries[k.(string)] = v.(deploymentEntry)
				return true
			})
			for name, entry := range entries {
				a.evaluate(ctx, entry, a.guardFor(ctx, name), now)
			}
			a.dropGuards(entries)
		}
	}
}

func (a *App) guardFor(ctx context.Context, name string) *guardState {
	a.guardsMu.Lock()
	defer a.guardsMu.Unlock()
	if st, ok := a.guards[name]; ok {
		return st
	}
	cctx, cancel := context.WithCancel(ctx)
	st := &guardState{checker: guard.NewChecker(a.now), stopChecker: cancel, checkerDone: make(chan struct{})}
	go func() {
		defer close(st.checkerDone)
		st.checker.Run(cctx)
	}()
	a.guards[name] = st
	return st
}

func (a *App) dropGuards(live map[string]deploymentEntry) {
	a.guardsMu.Lock()
	defer a.guardsMu.Unlock()
	for name, st := range a.guards {
		if _, ok := live[name]; !ok {
			st.stopChecker()
			<-st.checkerDone
			delete(a.guards, name)
		}
	}
}

// guardView returns the evaluator's view of a deployment, if it has one.
func (a *App) guardView(name string) (GuardView, bool) {
	a.guardsMu.Lock()
	st, ok := a.guards[name]
	a.guardsMu.Unlock()
	if !ok {
		return GuardView{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.view, !st.view.Updated.IsZero()
}

// evaluate advances a deployment's meters once per slot and acts on the
// first breach it finds: a pool's traffic goes to a healthy pool, a flag
// goes to 0%.
func (a *App) evaluate(ctx context.Context, entry deploymentEntry, st *guardState, now time.Time) {
	snap := entry.Snapshot()
	if snap == nil {
		return
	}
	if snap != st.healthSnap {
		st.healthSnap = snap
		configureChecks(st.checker, snap)
		// Pools and flags may be gone: their breach gauges go too, and
		// this slot sets the current ones again.
		a.metrics.breaching.DeletePartialMatch(prometheus.Labels{"deployment": snap.Name()})
	}
	g := snap.Guard()
	window := gateway.DefaultWindow
	if g != nil {
		window = g.Window.Std(gateway.DefaultWindow)
	}
	if now.Before(st.nextSlot) {
		return
	}
	st.nextSlot = now.Add(window / guard.Slots)
	entry.meters.Advance()

	w := entry.meters.Stats()
	policy := guard.Policy{MinRequests: gateway.DefaultMinRequests}
	if g != nil {
		policy = guard.Policy{
			ErrorRate:   g.ErrorRate / 100,
			P95:         time.Duration(g.P95),
			MinRequests: uint64(g.MinRequests),
			Baseline:    g.Baseline,
		}
		if g.MinRequests == 0 {
			policy.MinRequests = gateway.DefaultMinRequests
		}
	}
	view := GuardView{
		Instance: a.Instance, Version: snap.Version(), Updated: now,
		Pools: map[string]PopulationView{}, Health: st.checker.All(), Retained: a.retainedPools(snap.Name()),
	}
	cooldownUntil := a.cooldownUntil(snap.Name(), g)
	if cooldownUntil.After(now) {
		view.Cooldown = cooldownUntil
	}

	type action struct {
		kind, subject, target, reason string
	}
	var act *action
	// Flags are judged first: a bad flag shows in every pool it runs in,
	// and switching it off is the narrower, more specific fix.
	for i, f := range snap.FlagNames() {
		cohorts := w.Flags[f]
		var v guard.Verdict
		if pct := snap.FlagPercent(i); g != nil && pct > 0 {
			v = policy.Check(cohorts[1], cohorts[0], pct < gateway.Buckets)
		}
		if view.Flags == nil {
			view.Flags = map[string][2]PopulationView{}
		}
		view.Flags[f] = [2]PopulationView{populationView(cohorts[0], guard.Verdict{}), populationView(cohorts[1], v)}
		a.metrics.breaching.WithLabelValues(snap.Name(), "flag", f).Set(boolGauge(v.Breach))
		if v.Breach && act == nil {
			act = &action{kind: "flag", subject: f, reason: v.Reason}
		}
	}
	pools := snap.Pools()
	for _, p := range pools {
		var others []guard.Stats
		othersLive := false
		for _, q := range pools {
			if q.Name != p.Name {
				others = append(others, w.Pools[q.Name])
				othersLive = othersLive || q.Weight > 0
			}
		}
		var v guard.Verdict
		if g != nil && p.Weight > 0 {
			v = policy.Check(w.Pools[p.Name], guard.Merge(others...), othersLive)
		}
		view.Pools[p.Name] = populationView(w.Pools[p.Name], v)
		a.metrics.breaching.WithLabelValues(snap.Name(), "pool", p.Name).Set(boolGauge(v.Breach))
		if v.Breach && act == nil {
			target, why := fallbackTarget(snap, p.Name, view.Health, view.Retained, w, policy)
			if target == "" {
				if now.Sub(st.lastRefusal) >= g.Cooldown.Std(gateway.DefaultCooldown) {
					st.lastRefusal = now
					a.event(ctx, Event{Deployment: snap.Name(), Kind: EventFallbackRefused, Subject: "pool:" + p.Name,
						Version: snap.Version(), Reason: v.Reason + "; not moving traffic: " + why})
				}
				continue
			}
			act = &action{kind: "pool", subject: p.Name, target: target, reason: v.Reason}
		}
	}
	st.mu.Lock()
	st.view = view
	st.mu.Unlock()

	// While the store is unreachable a fallback could not be written (and
	// every attempt would stall this loop, and so the meters, for its
	// timeout); the gateway keeps serving the last applied version.
	if act == nil || cooldownUntil.After(now) || !a.healthy.Load() {
		return
	}
	switch act.kind {
	case "pool":
		a.fallBack(ctx, snap, EventFallback, "pool:"+act.subject, act.reason+"; traffic to "+act.target, func(c *gateway.Config) error {
			c.Weights[act.target] += c.Weights[act.subject]
			c.Weights[act.subject] = 0
			return nil
		})
	case "flag":
		a.fallBack(ctx, snap, EventFlagOff, "flag:"+act.subject, act.reason+"; flag set to 0%", func(c *gateway.Config) error {
			f := c.Flags[act.subject]
			f.Percent = 0
			c.Flags[act.subject] = f
			return nil
		})
	}
}

// fallbackTarget picks the pool a breaching pool's traffic goes to: a pool
// that is not breaching itself and not failing its active health checks,
// preferring the one with the most traffic, then the retained rollback
// target. It returns "" and why when there is none.
func fallbackTarget(snap *gateway.Snapshot, bad string, health map[string]guard.PoolHealth, retainedPools map[string]time.Time, w guard.Window, policy guard.Policy) (string, string) {
	type cand struct {
		name     string
		weight   uint32
		retained bool
	}
	var cands []cand
	var refused []string
	for _, p := range snap.Pools() {
		if p.Name == bad {
			continue
		}
		if h, ok := health[p.Name]; ok && !h.Healthy {
			refused = append(refused, fmt.Sprintf("%s fails its health checks (%s)", p.Name, h.Error))
			continue
		}
		if v := policy.Check(w.Pools[p.Name], guard.Stats{}, false); v.Breach && p.Weight > 0 {
			refused = append(refused, fmt.Sprintf("%s is failing too (%s)", p.Name, v.Reason))
			continue
		}
		_, retained := retainedPools[p.Name]
		cands = append(cands, cand{p.Name, p.Weight, retained})
	}
	if len(cands) == 0 {
		if len(refused) == 0 {
			return "", "no other pool"
		}
		return "", fmt.Sprint(refused)
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].weight != cands[j].weight {
			return cands[i].weight > cands[j].weight
		}
		return cands[i].retained && !cands[j].retained
	})
	return cands[0].name, ""
}

// fallBack writes the guard's change as a new version on top of the one it
// judged: if another instance got there first, its compare-and-swap fails
// and this one does nothing, so every instance converges on one fallback.
func (a *App) fallBack(ctx context.Context, snap *gateway.Snapshot, kind, subject, reason string, mutate func(*gateway.Config) error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res, err := a.store.Update(wctx, snap.Name(), snap.Version(), configstore.Meta{
		Author:   a.Instance,
		Source:   configstore.SourceGuard,
		Reason:   reason,
		Fallback: true,
	}, mutate)
	switch {
	case errors.Is(err, configstore.ErrConflict):
		a.logger.Debug("guard: another writer changed the deployment first", zap.String("deployment", snap.Name()))
		return
	case err != nil:
		a.logger.Error("guard: writing fallback", zap.String("deployment", snap.Name()), zap.String("subject", subject), zap.Error(err))
		return
	}
	if !res.Wrote {
		return
	}
	doc := res.Doc
	a.noteGuardWrite(snap.Name(), doc.Meta.Time)
	a.metrics.fallbacks.WithLabelValues(snap.Name(), kind).Inc()
	a.logger.Warn("guard: fallback", zap.String("deployment", snap.Name()), zap.String("subject", subject),
		zap.Uint64("version", doc.Meta.Version), zap.String("reason", reason))
	a.apply(doc) // don't wait for the watch to bring our own write back
	a.event(ctx, Event{Deployment: snap.Name(), Kind: kind, Subject: subject, Version: doc.Meta.Version, Reason: reason})
}

// noteGuardWrite remembers the time of a deployment's last guard version,
// whoever wrote it, for the cooldown.
func (a *App) noteGuardWrite(name string, t time.Time) {
	a.guardsMu.Lock()
	defer a.guardsMu.Unlock()
	if t.After(a.lastGuardWrite[name]) {
		a.lastGuardWrite[name] = t
	}
}

func (a *App) cooldownUntil(name string, g *gateway.Guard) time.Time {
	a.guardsMu.Lock()
	defer a.guardsMu.Unlock()
	last, ok := a.lastGuardWrite[name]
	if !ok {
		return time.Time{}
	}
	var cd gateway.Duration
	if g != nil {
		cd = g.Cooldown
	}
	return last.Add(cd.Std(gateway.DefaultCooldown))
}

// configureChecks points the health checker at the snapshot's pools.
func configureChecks(c *guard.Checker, snap *gateway.Snapshot) {
	h := snap.Health()
	if h == nil {
		c.Set(nil, "", 0)
		return
	}
	targets := map[string][]string{}
	for _, p := range snap.Pools() {
		targets[p.Name] = p.Upstreams
	}
	c.Set(targets, h.URI, h.Interval.Std(gateway.DefaultInterval))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

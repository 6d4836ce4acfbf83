package caddymodule

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/triage"
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
	snap        *gateway.Snapshot // the snapshot policy was compiled from
	policy      guard.Policy      // compiled from snap's guard
	checked     *gateway.Snapshot // the snapshot the checker was set from
	probes      *probeTransports  // the transports the checker was set with
	nextSlot    time.Time         // when the meters advance next
	lastRefusal time.Time         // rate-limits "fallback refused" events

	// mu protects view and marks, read by the admin API.
	mu    sync.Mutex
	view  guard.View
	marks []triage.Mark // the windows as they were when recent versions were applied
}

// runGuards is the evaluator goroutine; it stops with ctx.
func (a *App) runGuards(ctx context.Context) {
	t := time.NewTicker(guardTick)
	defer t.Stop()
	if a.crit.loop != nil {
		// The criteria probe on their own loop: a slow database or
		// endpoint must not hold up the meters.
		var probing sync.WaitGroup
		cctx, cancel := context.WithCancel(ctx)
		probing.Go(func() { a.crit.loop.Run(cctx, liveSnapshots) })
		defer probing.Wait()
		defer cancel()
	}
	if a.Fleet != fleetOff {
		var publishing sync.WaitGroup
		fctx, cancel := context.WithCancel(ctx)
		publishing.Go(func() { a.runFleet(fctx, &a.fleet) })
		defer publishing.Wait()
		defer cancel()
	}
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
			a.metrics.breaching.DeletePartialMatch(prometheus.Labels{"deployment": name})
		}
	}
}

// guardView returns the evaluator's view of a deployment, if it has one.
func (a *App) guardView(name string) (guard.View, bool) {
	a.guardsMu.Lock()
	st, ok := a.guards[name]
	a.guardsMu.Unlock()
	if !ok {
		return guard.View{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.view, !st.view.Updated.IsZero()
}

// evaluate advances a deployment's meters once per slot, has guard.Judge
// look at them, and writes what it says.
func (a *App) evaluate(ctx context.Context, entry deploymentEntry, st *guardState, now time.Time) {
	snap := entry.Snapshot()
	if snap == nil {
		return
	}
	name := snap.Name()
	// A reload may rebuild the proxies, and so the transports to probe
	// through, under the same snapshot.
	if probes := entry.probes.Load(); snap != st.checked || probes != st.probes {
		st.checked, st.probes = snap, probes
		configureChecks(st.checker, snap, probes)
	}
	if snap != st.snap {
		w, _, _, _ := a.window(name, entry, now)
		st.mark(snap.Version(), now, w)
		st.snap, st.policy = snap, guard.Compile(snap.Guard())
		// Pools and flags may be gone, or the guard with them: their
		// breach gauges go too, and this slot sets the current ones again.
		a.metrics.breaching.DeletePartialMatch(prometheus.Labels{"deployment": name})
	}
	if now.Before(st.nextSlot) {
		return
	}
	st.nextSlot = now.Add(st.policy.Window / guard.Slots)
	entry.meters.Advance()

	crits, change := a.criteriaInput(name)
	window, fleet, leftOut, peerCrits := a.window(name, entry, now)
	view, act := guard.Judge(guard.Input{
		Snapshot:     snap,
		Policy:       st.policy,
		Window:       window,
		Fleet:        fleet,
		LeftOut:      leftOut,
		PeerCriteria: peerCrits,
		Health:       st.checker.All(),
		Retained:     a.retainedPools(name),
		LastFallback: a.control.LastFallback(name),
		LastRefusal:  st.lastRefusal,
		Criteria:     crits,
		Change:       change,
		Instance:     a.Instance,
		Now:          now,
	})
	// Gauges first: once the view shows a slot, its gauges are set.
	a.setBreaching(view)
	a.setCriteriaGauges(view)
	st.mu.Lock()
	st.view = view
	st.mu.Unlock()
	if act.Kind == guard.Refused || act.Kind == guard.CriterionBreach {
		st.lastRefusal = now
	}
	a.act(ctx, snap, act)
}

// act has control write what a judgement asked for: a fallback version,
// or an event saying why there is none.
func (a *App) act(ctx context.Context, snap *gateway.Snapshot, act guard.Action) {
	name := snap.Name()
	res, err := a.control.FallBack(ctx, name, act)
	switch {
	case errors.Is(err, configstore.ErrConflict):
		a.logger.Debug("guard: another writer changed the deployment first", zap.String("deployment", name))
	case errors.Is(err, configstore.ErrUnavailable):
		a.logger.Debug("guard: store unreachable; serving the last applied version", zap.String("deployment", name), zap.Error(err))
	case err != nil:
		a.logger.Error("guard: writing fallback", zap.String("deployment", name), zap.String("subject", act.Subject), zap.Error(err))
	case res.Wrote:
		a.metrics.fallbacks.WithLabelValues(name, act.Kind.String()).Inc()
	}
}

// setBreaching sets the breach gauges of a judged deployment; one without
// a guard has none, so no one reads a 0 as "the guard sees nothing wrong".
func (a *App) setBreaching(v guard.View) {
	if !v.Guard {
		return
	}
	for pool, p := range v.Pools {
		a.metrics.breaching.WithLabelValues(v.Deployment, "pool", pool).Set(boolGauge(p.Breach != ""))
	}
	for flag, c := range v.Flags {
		a.metrics.breaching.WithLabelValues(v.Deployment, "flag", flag).Set(boolGauge(c.On.Breach != ""))
	}
}

// noteGuardWrite starts the cooldown from a guard version applied here,
// whoever wrote it.
func (a *App) noteGuardWrite(name string, t time.Time) { a.control.NoteGuardWrite(name, t) }

// configureChecks points the health checker at the snapshot's pools, each
// probed through its proxy's transport (plain HTTP for a pool whose proxy
// is not known yet).
func configureChecks(c *guard.Checker, snap *gateway.Snapshot, probes *probeTransports) {
	h := snap.Health()
	if h == nil {
		c.Set(nil, "", 0)
		return
	}
	targets := map[string]guard.Target{}
	for _, p := range snap.Pools() {
		tg := guard.Target{Upstreams: p.Upstreams}
		if probes != nil {
			tg.Transport = (*probes)[upstreamKey(p.Upstreams)]
		}
		targets[p.Name] = tg
	}
	c.Set(targets, h.URI, h.Interval.Std(gateway.DefaultInterval))
	c.SetLatency(time.Duration(h.Latency))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

package caddymodule

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/guard"
)

// fleetInterval is how often each instance publishes its windows' summary
// and reads the others': one small write and one read per second.
const fleetInterval = time.Second

// fleetMaxAge is how old another instance's summary may be and still be
// merged: two intervals.
const fleetMaxAge = 2 * fleetInterval

// fleetView is the instances' summaries as last published, by instance.
type fleetView map[string]guard.FleetSummary

// fleetOff is App.Fleet's value that makes each instance judge alone.
const fleetOff = "off"

// runFleet publishes this instance's summary once per fleetInterval, and
// follows every instance's as they are published, until ctx ends.
func (a *App) runFleet(ctx context.Context, view *atomic.Pointer[fleetView]) {
	var following sync.WaitGroup
	following.Go(func() {
		_ = a.store.FollowSummaries(ctx, func(inst string, b []byte) {
			next := fleetView{}
			if cur := view.Load(); cur != nil {
				maps.Copy(next, *cur)
			}
			fs, err := guard.DecodeFleetSummary(b)
			if b == nil || err != nil {
				delete(next, inst)
			} else {
				next[inst] = fs
			}
			view.Store(&next)
		})
	})
	defer following.Wait()
	t := time.NewTicker(fleetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.healthy.Load() {
				a.publishSummary(ctx)
			}
		}
	}
}

func (a *App) publishSummary(ctx context.Context) {
	own := guard.FleetSummary{Time: a.now(), Deployments: map[string]guard.Summary{}}
	deployments.Range(func(k, v any) bool {
		name := k.(string)
		s := v.(deploymentEntry).meters.Summary()
		if gv, ok := a.guardView(name); ok && len(a.criteriaStates(name)) > 0 {
			s.Criteria = gv.Criteria // this instance probes them
		}
		own.Deployments[name] = s
		return true
	})
	if err := a.store.PublishSummary(ctx, a.Instance, own); err != nil {
		a.logger.Debug("fleet: publishing this instance's summary", zap.Error(err))
	}
}

// window is a deployment's window for its judgement at now: this
// instance's merged with every other instance's fresh summary, and the
// instances merged and left out.
func (a *App) window(name string, entry deploymentEntry, now time.Time) (w guard.Window, fleet []string, stale map[string]time.Time, crits map[string]guard.CriterionView) {
	fv := a.fleet.Load()
	if a.Fleet == fleetOff || fv == nil {
		return entry.meters.Stats(), nil, nil, nil
	}
	peers, fleet, stale := guard.Peers(a.Instance, *fv, name, now, fleetMaxAge)
	for _, p := range peers {
		if len(p.Criteria) > 0 {
			crits = p.Criteria
		}
	}
	return guard.MergeWindow(entry.meters.Summary(), peers...), fleet, stale, crits
}

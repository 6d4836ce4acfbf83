package caddymodule

import (
	"context"
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

// fleetView is the other instances' summaries as last read.
type fleetView struct {
	read      time.Time // when they were read; their age is judged at it
	summaries map[string]guard.FleetSummary
}

// fleetOff is App.Fleet's value that makes each instance judge alone.
const fleetOff = "off"

// runFleet publishes this instance's summary and reads the fleet's, once
// per fleetInterval, until ctx ends.
func (a *App) runFleet(ctx context.Context, view *atomic.Pointer[fleetView]) {
	t := time.NewTicker(fleetInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.healthy.Load() {
				a.exchangeSummaries(ctx, view)
			}
		}
	}
}

func (a *App) exchangeSummaries(ctx context.Context, view *atomic.Pointer[fleetView]) {
	own := guard.FleetSummary{Time: a.now(), Deployments: map[string]guard.Summary{}}
	deployments.Range(func(k, v any) bool {
		own.Deployments[k.(string)] = v.(deploymentEntry).meters.Summary()
		return true
	})
	if err := a.store.PublishSummary(ctx, a.Instance, own); err != nil {
		a.logger.Debug("fleet: publishing this instance's summary", zap.Error(err))
	}
	raw, err := a.store.Summaries(ctx)
	if err != nil {
		a.logger.Debug("fleet: reading the summaries", zap.Error(err))
		return
	}
	fv := &fleetView{read: a.now(), summaries: make(map[string]guard.FleetSummary, len(raw))}
	for inst, b := range raw {
		if fs, err := guard.DecodeFleetSummary(b); err == nil {
			fv.summaries[inst] = fs
		}
	}
	view.Store(fv)
}

// window is a deployment's window for its judgement: this instance's
// merged with every other instance's fresh summary, and the instances
// merged and left out.
func (a *App) window(name string, entry deploymentEntry) (guard.Window, []string, map[string]time.Time) {
	fv := a.fleet.Load()
	if a.Fleet == fleetOff || fv == nil {
		return entry.meters.Stats(), nil, nil
	}
	peers, fleet, stale := guard.Peers(a.Instance, fv.summaries, name, fv.read, fleetMaxAge)
	return guard.MergeWindow(entry.meters.Summary(), peers...), fleet, stale
}

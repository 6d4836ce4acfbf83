package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

const (
	// rolloutTick is how often the elected driver looks at the rollouts.
	rolloutTick = 250 * time.Millisecond
	// rolloutSessionTTL is how long leadership outlives a driver that died
	// without resigning: the longest a rollout waits for another instance
	// to take it over.
	rolloutSessionTTL = 5 * time.Second
	// rolloutRetry is the wait before campaigning again after the session
	// expired or etcd refused.
	rolloutRetry = time.Second
	// rolloutViewMaxAge is how old the guard's view may be and still count
	// as knowing the target's health.
	rolloutViewMaxAge = 2 * time.Second
)

// runRollouts drives the deployments' rollouts from the store while this
// instance is the elected driver (the store's "rollout" leadership), so
// exactly one instance advances them; the others wait their turn.
// Leadership is tied to a lease: when this instance stops it resigns, when
// it dies the lease expires after rolloutSessionTTL, and either way
// another one takes over from the state in etcd. Every write the driver
// makes is fenced by its leadership, so a driver deposed without noticing
// writes nothing. On a lost leadership it campaigns again. It returns when
// ctx ends.
func (a *App) runRollouts(ctx context.Context) {
	for {
		err := a.leadRollouts(ctx)
		if ctx.Err() != nil {
			return
		}
		a.logger.Warn("rollouts: not driving; campaigning again", zap.Error(err))
		t := time.NewTimer(rolloutRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// leadRollouts campaigns, then drives the rollouts every rolloutTick
// until ctx ends or the leadership is lost.
func (a *App) leadRollouts(ctx context.Context) error {
	leader, err := a.store.Lead(ctx, "rollout", a.Instance, configstore.LeaseTTL(rolloutSessionTTL))
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	defer leader.Resign()
	a.logger.Info("rollouts: this instance drives the rollouts", zap.String("instance", a.Instance))
	t := time.NewTicker(rolloutTick)
	defer t.Stop()
	for {
		select {
		case <-leader.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.New("rollouts: leadership lost: its lease expired")
		case <-t.C:
			a.driveRollouts(ctx, leader)
		}
	}
}

// storedRollout is a rollout as read from the store, with the revision
// its next write must compare.
type storedRollout struct {
	rollout.Rollout
	rev int64
}

// driveRollouts moves every running rollout one decision further. A record
// that does not decode is skipped rather than let it stop the others.
func (a *App) driveRollouts(ctx context.Context, leader *configstore.Leader) {
	recs, err := a.store.ListRecords(ctx, rollout.RecordKind)
	if err != nil {
		a.logger.Debug("rollouts: listing", zap.Error(err))
		return
	}
	for _, rec := range recs {
		r, err := rollout.Decode(rec.Name, rec.Value)
		if err != nil {
			a.logger.Debug("rollouts: skipping a record", zap.Error(err))
			continue
		}
		if r.State == rollout.Running {
			a.driveRollout(ctx, leader, storedRollout{r, rec.Rev})
		}
	}
}

func (a *App) driveRollout(ctx context.Context, leader *configstore.Leader, sr storedRollout) {
	r := sr.Rollout
	now := a.now()
	doc, err := a.store.Get(ctx, r.Deployment)
	if errors.Is(err, configstore.ErrNotFound) {
		a.abortRollout(ctx, leader, sr, doc, rollout.Decision{Action: rollout.Abort, Message: "deployment " + r.Deployment + " no longer exists"})
		return
	}
	if err != nil {
		a.logger.Debug("rollouts: reading deployment", zap.String("deployment", r.Deployment), zap.Error(err))
		return
	}
	d := rollout.Next(r, rollout.Doc{
		Config:  doc.Config,
		ByGuard: doc.Meta.Source == configstore.SourceGuard,
		Reason:  doc.Meta.Reason,
	}, a.rolloutHealth(r, doc, now), now)
	switch d.Action {
	case rollout.Hold:
		if d.Message != r.Message {
			r.Message = d.Message
			a.putRollout(ctx, leader, r, sr.rev)
		}
	case rollout.Apply:
		a.applyStep(ctx, leader, sr, doc, d, now)
	case rollout.Finish:
		r.State, r.Message = rollout.Done, d.Message
		if a.putRollout(ctx, leader, r, sr.rev) {
			a.logger.Info("rollout done", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID), zap.String("target", r.Target))
			a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventDone, Subject: r.Target, Version: doc.Meta.Version, Reason: d.Message})
		}
	case rollout.Abort:
		a.abortRollout(ctx, leader, sr, doc, d)
	}
}

// applyStep writes the step's version on top of the one judged, then
// records the step. If the record loses to the admin API (a pause, an
// abort), the version stays and the next look at the rollout (Next)
// recognises it as the rollout's own.
func (a *App) applyStep(ctx context.Context, leader *configstore.Leader, sr storedRollout, doc configstore.Document, d rollout.Decision, now time.Time) {
	r := sr.Rollout
	reason := rollout.StepReason(r, d.Step)
	written, err := a.writeRollout(ctx, leader, doc, reason, false, d.Mutate)
	var fe *gateway.FieldError
	if errors.As(err, &fe) {
		a.abortRollout(ctx, leader, sr, doc, rollout.Decision{Action: rollout.Abort, Value: r.From, Mutate: rollout.Rollback(r),
			Message: fmt.Sprintf("before step %d/%d, which could not be written: %v; rolled back to %v%%", d.Step+1, len(r.Steps), err, r.From)})
		return
	}
	if err != nil {
		return
	}
	r.Step, r.StepStarted, r.Message, r.Version = d.Step, now.UTC().Round(0), d.Message, written.Meta.Version
	if !a.putRollout(ctx, leader, r, sr.rev) {
		return
	}
	a.logger.Info("rollout step", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID),
		zap.String("target", r.Target), zap.Float64("value", d.Value), zap.Uint64("version", written.Meta.Version))
	a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventStep, Subject: r.Target, Version: written.Meta.Version, Reason: reason})
}

// abortRollout writes the rollback, when the decision has one, and records
// the rollout aborted. A rollback that loses to another writer is decided
// again on the next tick.
func (a *App) abortRollout(ctx context.Context, leader *configstore.Leader, sr storedRollout, doc configstore.Document, d rollout.Decision) {
	r := sr.Rollout
	r.State, r.Message = rollout.Aborted, d.Message
	version := doc.Meta.Version
	if d.Mutate != nil {
		written, err := a.writeRollout(ctx, leader, doc, rollout.AbortReason(r, d.Message), true, d.Mutate)
		var fe *gateway.FieldError
		switch {
		case errors.As(err, &fe):
			r.Message += "; the rollback was refused: " + err.Error()
		case err != nil:
			return
		default:
			version, r.Version = written.Meta.Version, written.Meta.Version
		}
	}
	if !a.putRollout(ctx, leader, r, sr.rev) {
		return
	}
	a.logger.Warn("rollout aborted", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID),
		zap.String("target", r.Target), zap.String("reason", r.Message))
	a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventAborted, Subject: r.Target, Version: version, Reason: r.Message})
}

// writeRollout writes a rollout's change on top of the version it judged,
// fenced by the driver's leadership; if anyone wrote meanwhile, the
// compare-and-swap fails and the rollout is judged again on the next tick.
// A rollback (fallback) does not make the pools it empties rollback
// targets. It returns the deployment's document after the write.
func (a *App) writeRollout(ctx context.Context, leader *configstore.Leader, doc configstore.Document, reason string, fallback bool, mutate func(*gateway.Config) error) (configstore.Document, error) {
	name := doc.Config.Name
	res, err := a.store.Update(ctx, name, doc.Meta.Version, configstore.Meta{
		Author:   a.Instance,
		Source:   configstore.SourceRollout,
		Reason:   reason,
		Fallback: fallback,
	}, mutate, configstore.Fence(leader))
	switch {
	case errors.Is(err, configstore.ErrConflict):
		a.logger.Debug("rollouts: the deployment changed meanwhile", zap.String("deployment", name))
		return res.Doc, err
	case errors.Is(err, configstore.ErrNotLeader):
		a.logger.Warn("rollouts: no longer the driver; wrote nothing", zap.String("deployment", name), zap.Error(err))
		return res.Doc, err
	case err != nil:
		a.logger.Error("rollouts: writing", zap.String("deployment", name), zap.String("reason", reason), zap.Error(err))
		return res.Doc, err
	}
	if res.Wrote {
		a.apply(res.Doc) // don't wait for the watch to bring our own write back
	}
	return res.Doc, nil
}

// putRollout records r, fenced by the driver's leadership; false when it
// was not recorded.
func (a *App) putRollout(ctx context.Context, leader *configstore.Leader, r rollout.Rollout, rev int64) bool {
	r.Stamp(a.now())
	_, err := a.store.PutRecord(ctx, rollout.RecordKind, r.Deployment, r, rev, configstore.Fence(leader))
	switch {
	case errors.Is(err, configstore.ErrConflict):
		a.logger.Debug("rollouts: the rollout changed meanwhile (paused, resumed or aborted)", zap.String("deployment", r.Deployment))
		return false
	case err != nil:
		a.logger.Warn("rollouts: recording", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID), zap.Error(err))
		return false
	}
	return true
}

// rolloutHealth is the guard's view of the rollout's target on this
// instance: the pool's window, or the flag-on cohort's. It is known when
// the guard judged it within rolloutViewMaxAge, at the document's version
// or later.
func (a *App) rolloutHealth(r rollout.Rollout, doc configstore.Document, now time.Time) rollout.Health {
	h := rollout.Health{MinSamples: guard.Compile(doc.Config.Guard).MinRequests}
	t, err := rollout.ParseTarget(r.Target)
	if err != nil {
		return h
	}
	view, ok := a.guardView(r.Deployment)
	if !ok {
		return h
	}
	var p guard.Population
	switch t.Kind {
	case rollout.KindPool:
		p, ok = view.Pools[t.Name]
	case rollout.KindFlag:
		var cohorts guard.Cohorts[guard.Population]
		cohorts, ok = view.Flags[t.Name]
		p = cohorts.On
	}
	if !ok {
		return h
	}
	h.Breach = p.Breach
	h.Samples = p.Requests
	h.Known = now.Sub(view.Updated) <= rolloutViewMaxAge && view.Version >= doc.Meta.Version
	return h
}

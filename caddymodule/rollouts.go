package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

const (
	// rolloutTick is how often the elected driver looks at the rollouts.
	rolloutTick = 250 * time.Millisecond
	// rolloutSessionTTL, in seconds, is how long leadership outlives a
	// driver that died without resigning: the longest a rollout waits for
	// another instance to take it over.
	rolloutSessionTTL = 5
	// rolloutRetry is the wait before campaigning again after the session
	// expired or etcd refused.
	rolloutRetry = time.Second
	// rolloutViewMaxAge is how old the guard's view may be and still count
	// as knowing the target's health.
	rolloutViewMaxAge = 2 * time.Second
)

// runRollouts drives the deployments' rollouts from the store while this
// instance is the elected driver (etcd's concurrency election under
// <prefix>/rollout-leader), so exactly one instance advances them; the
// others wait their turn. Leadership is tied to a lease: when this
// instance stops it resigns, when it dies the lease expires after
// rolloutSessionTTL seconds, and either way another one takes over from
// the state in etcd. On a lost session it campaigns again. It returns when
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
// until ctx ends or the session is lost.
func (a *App) leadRollouts(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The election gets a client that shares a.client's connections but
	// whose context ends with ctx: a cancelled Campaign resigns with the
	// client's context, and that must not wait on an unreachable etcd
	// while Stop waits for this goroutine.
	cli := clientv3.NewCtxClient(ctx, clientv3.WithZapLogger(a.logger.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel))))
	cli.KV, cli.Lease, cli.Watcher = a.client.KV, a.client.Lease, a.client.Watcher
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(rolloutSessionTTL))
	if err != nil {
		return fmt.Errorf("rollouts: session: %w", err)
	}
	defer a.resign(session)
	election := concurrency.NewElection(session, a.store.Prefix()+"/rollout-leader")
	if err := election.Campaign(session.Ctx(), a.Instance); err != nil {
		return fmt.Errorf("rollouts: campaign: %w", err)
	}
	a.logger.Info("rollouts: this instance drives the rollouts", zap.String("instance", a.Instance))
	t := time.NewTicker(rolloutTick)
	defer t.Stop()
	for {
		select {
		case <-session.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.New("rollouts: leadership lost: the session's lease expired")
		case <-t.C:
			a.driveRollouts(session.Ctx())
		}
	}
}

// resign ends the session and revokes its lease, which deletes the
// election key: another instance takes over at once rather than after the
// TTL. The session's own Close would revoke with the (cancelled) context.
func (a *App) resign(s *concurrency.Session) {
	s.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := a.client.Revoke(ctx, s.Lease()); err != nil {
		a.logger.Debug("rollouts: revoking the election lease; it expires by itself", zap.Error(err))
	}
}

// driveRollouts moves every running rollout one decision further.
func (a *App) driveRollouts(ctx context.Context) {
	list, err := a.store.ListRollouts(ctx)
	if err != nil {
		a.logger.Debug("rollouts: listing", zap.Error(err))
		return
	}
	for _, sr := range list {
		if sr.State == rollout.Running {
			a.driveRollout(ctx, sr)
		}
	}
}

func (a *App) driveRollout(ctx context.Context, sr configstore.StoredRollout) {
	r := sr.Rollout
	now := a.now()
	doc, err := a.store.Get(ctx, r.Deployment)
	if errors.Is(err, configstore.ErrNotFound) {
		a.abortRollout(ctx, sr, doc, rollout.Decision{Action: rollout.Abort, Message: "deployment " + r.Deployment + " no longer exists"})
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
			a.putRollout(ctx, r, sr.ModRev)
		}
	case rollout.Apply:
		a.applyStep(ctx, sr, doc, d, now)
	case rollout.Finish:
		r.State, r.Message = rollout.Done, d.Message
		if a.putRollout(ctx, r, sr.ModRev) {
			a.logger.Info("rollout done", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID), zap.String("target", r.Target))
			a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventDone, Subject: r.Target, Version: doc.Meta.Version, Reason: d.Message})
		}
	case rollout.Abort:
		a.abortRollout(ctx, sr, doc, d)
	}
}

// applyStep writes the step's version on top of the one judged, then
// records the step. If the record loses to the admin API (a pause, an
// abort), the version stays and the next look at the rollout (Next)
// recognises it as the rollout's own.
func (a *App) applyStep(ctx context.Context, sr configstore.StoredRollout, doc configstore.Document, d rollout.Decision, now time.Time) {
	r := sr.Rollout
	reason := rollout.StepReason(r, d.Step)
	written, err := a.writeRollout(ctx, doc, reason, false, d.Mutate)
	var fe *gateway.FieldError
	if errors.As(err, &fe) {
		a.abortRollout(ctx, sr, doc, rollout.Decision{Action: rollout.Abort, Value: r.From, Mutate: rollout.Rollback(r),
			Message: fmt.Sprintf("before step %d/%d, which could not be written: %v; rolled back to %v%%", d.Step+1, len(r.Steps), err, r.From)})
		return
	}
	if err != nil {
		return
	}
	r.Step, r.StepStarted, r.Message, r.Version = d.Step, now.UTC().Round(0), d.Message, written.Meta.Version
	if !a.putRollout(ctx, r, sr.ModRev) {
		return
	}
	a.logger.Info("rollout step", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID),
		zap.String("target", r.Target), zap.Float64("value", d.Value), zap.Uint64("version", written.Meta.Version))
	a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventStep, Subject: r.Target, Version: written.Meta.Version, Reason: reason})
}

// abortRollout writes the rollback, when the decision has one, and records
// the rollout aborted. A rollback that loses to another writer is decided
// again on the next tick.
func (a *App) abortRollout(ctx context.Context, sr configstore.StoredRollout, doc configstore.Document, d rollout.Decision) {
	r := sr.Rollout
	r.State, r.Message = rollout.Aborted, d.Message
	version := doc.Meta.Version
	if d.Mutate != nil {
		written, err := a.writeRollout(ctx, doc, rollout.AbortReason(r, d.Message), true, d.Mutate)
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
	if !a.putRollout(ctx, r, sr.ModRev) {
		return
	}
	a.logger.Warn("rollout aborted", zap.String("deployment", r.Deployment), zap.String("rollout", r.ID),
		zap.String("target", r.Target), zap.String("reason", r.Message))
	a.event(ctx, Event{Deployment: r.Deployment, Kind: rollout.EventAborted, Subject: r.Target, Version: version, Reason: r.Message})
}

// writeRollout writes a rollout's change on top of the version it judged;
// if anyone wrote meanwhile, the compare-and-swap fails and the rollout is
// judged again on the next tick.
// A rollback (fallback) does not make the pools it empties rollback targets.
func (a *App) writeRollout(ctx context.Context, doc configstore.Document, reason string, fallback bool, mutate func(*gateway.Config) error) (configstore.Document, error) {
	name := doc.Config.Name
	written, err := a.store.Update(ctx, name, doc.Meta.Version, configstore.Meta{
		Author:   a.Instance,
		Source:   configstore.RolloutSource,
		Reason:   reason,
		Fallback: fallback,
	}, mutate)
	switch {
	case errors.Is(err, configstore.ErrConflict):
		a.logger.Debug("rollouts: the deployment changed meanwhile", zap.String("deployment", name))
		return written, err
	case err != nil:
		a.logger.Error("rollouts: writing", zap.String("deployment", name), zap.String("reason", reason), zap.Error(err))
		return written, err
	}
	if written.Meta.Version > doc.Meta.Version {
		a.apply(written) // don't wait for the watch to bring our own write back
	}
	return written, nil
}

// putRollout records r; false when it was not recorded.
func (a *App) putRollout(ctx context.Context, r rollout.Rollout, modRev int64) bool {
	_, err := a.store.PutRollout(ctx, r, modRev)
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

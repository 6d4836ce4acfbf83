package control

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
	// Role is the store leadership (configstore.Store.Lead) the rollout
	// driver holds.
	Role = "rollout"
	// tick is how often the elected driver looks at the rollouts.
	tick = 250 * time.Millisecond
	// sessionTTL is how long leadership outlives a driver that died
	// without resigning: the longest a rollout waits for another instance
	// to take it over.
	sessionTTL = 5 * time.Second
	// retry is the wait before campaigning again after the session
	// expired or etcd refused.
	retry = time.Second
	// viewMaxAge is how old the guard's view may be and still count as
	// knowing the target's health.
	viewMaxAge = 2 * time.Second
)

// Run drives the deployments' rollouts while this instance is the elected
// driver (the store's Role leadership), so exactly one instance advances
// them; the others wait their turn. Leadership is tied to a lease: when
// Run returns it resigns, when the process dies the lease expires after
// sessionTTL, and either way another instance takes over from the state
// in the store. Every write the driver makes is fenced by its leadership,
// so a driver deposed without noticing writes nothing. On a lost
// leadership it campaigns again. Run returns when ctx ends; the caller
// owns it (runs it in a goroutine and waits for it after ending ctx).
func (c *Control) Run(ctx context.Context) {
	for {
		err := c.lead(ctx)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("rollouts: not driving; campaigning again", zap.Error(err))
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Leading reports whether this instance is the elected driver, which also
// probes the external criteria.
func (c *Control) Leading() bool { return c.leading.Load() }

// lead campaigns, then ticks until ctx ends or the leadership is lost.
func (c *Control) lead(ctx context.Context) error {
	leader, err := c.store.Lead(ctx, Role, c.instance, configstore.LeaseTTL(sessionTTL))
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	defer leader.Resign()
	c.leading.Store(true)
	defer c.leading.Store(false)
	c.log.Info("rollouts: this instance drives the rollouts", zap.String("instance", c.instance))
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-leader.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.New("rollouts: leadership lost: its lease expired")
		case <-t.C:
			c.Tick(ctx, leader, c.now())
		}
	}
}

// Tick moves every running rollout one decision further at now, and runs
// every release rollback under way to its end, writing as leader: it asks rollout.Next with the deployment's current document
// and the guard's view (Options.GuardView), and writes what it says. A
// record that does not decode is skipped rather than let it stop the
// others; a write that fails is decided again on the next tick.
func (c *Control) Tick(ctx context.Context, leader *configstore.Leader, now time.Time) {
	by := actor{author: c.instance, leader: leader}
	recs, err := c.store.ListRecords(ctx, rollout.RecordKind)
	if err != nil {
		c.log.Debug("rollouts: listing", zap.Error(err))
	}
	for _, rec := range recs {
		r, err := rollout.Decode(rec.Name, rec.Value)
		if err != nil {
			c.log.Debug("rollouts: skipping a record", zap.Error(err))
			continue
		}
		if r.State == rollout.Running {
			if err := c.drive(ctx, by, r, rec.Rev, now); err != nil {
				c.logDriveErr(r, err)
			}
		}
	}
	c.tickReleases(ctx, by)
}

func (c *Control) logDriveErr(r rollout.Rollout, err error) {
	fields := []zap.Field{zap.String("deployment", r.Deployment), zap.String("rollout", r.ID), zap.Error(err)}
	switch {
	case errors.Is(err, configstore.ErrConflict):
		c.log.Debug("rollouts: the deployment or the rollout changed meanwhile; deciding again", fields...)
	case errors.Is(err, configstore.ErrNotLeader):
		c.log.Warn("rollouts: no longer the driver; wrote nothing", fields...)
	default:
		c.log.Error("rollouts: driving", fields...)
	}
}

// drive writes what rollout.Next decides for r, read at rev.
func (c *Control) drive(ctx context.Context, by actor, r rollout.Rollout, rev int64, now time.Time) error {
	doc, err := c.store.Get(ctx, r.Deployment)
	if errors.Is(err, configstore.ErrNotFound) {
		return c.abort(ctx, by, r, rev, rollout.Decision{Action: rollout.Abort, Message: "deployment " + r.Deployment + " no longer exists"}, 0, now)
	}
	if err != nil {
		return err
	}
	d := rollout.Next(r, rollout.Doc{
		Config:  doc.Config,
		ByGuard: doc.Meta.Source == configstore.SourceGuard,
		Reason:  doc.Meta.Reason,
	}, c.health(r, doc, now), now)
	switch d.Action {
	case rollout.Hold:
		if d.Message == r.Message {
			return nil
		}
		r.Message = d.Message
		_, err := c.put(ctx, by, r, rev)
		return err
	case rollout.Apply:
		return c.step(ctx, by, r, rev, doc, d, now)
	case rollout.Finish:
		r.State, r.Message = rollout.Done, d.Message
		if _, err := c.put(ctx, by, r, rev); err != nil {
			return err
		}
		c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventDone, Subject: r.Target, Version: doc.Meta.Version, Reason: d.Message})
		return nil
	case rollout.Abort:
		return c.abort(ctx, by, r, rev, d, doc.Meta.Version, now)
	}
	return nil
}

// step writes the step's version on top of the one judged, then records
// the step. If the record loses to the admin API (a pause, an abort), the
// version stays and the next look at the rollout (Next) recognises it as
// the rollout's own. A step the deployment's validation refuses aborts
// the rollout.
func (c *Control) step(ctx context.Context, by actor, r rollout.Rollout, rev int64, doc configstore.Document, d rollout.Decision, now time.Time) error {
	reason := rollout.StepReason(r, d.Step)
	if next := doc.Config.Clone(); d.Mutate(&next) == nil {
		if e := c.CheckTraffic(ctx, r.Deployment, doc.Config, next); e != nil {
			return c.abort(ctx, by, r, rev, rollout.Decision{Action: rollout.Abort, Value: r.From, Mutate: rollout.Rollback(r),
				Message: fmt.Sprintf("before step %d/%d, refused by the compatibility gate: %v", d.Step+1, len(r.Steps), e)}, doc.Meta.Version, now)
		}
	}
	res, err := c.store.Update(ctx, r.Deployment, doc.Meta.Version, configstore.Meta{
		Author: by.author,
		Source: configstore.SourceRollout,
		Reason: reason,
	}, d.Mutate, by.opts()...)
	var fe *gateway.FieldError
	if errors.As(err, &fe) {
		return c.abort(ctx, by, r, rev, rollout.Decision{Action: rollout.Abort, Value: r.From, Mutate: rollout.Rollback(r),
			Message: fmt.Sprintf("before step %d/%d, which could not be written: %v", d.Step+1, len(r.Steps), err)}, doc.Meta.Version, now)
	}
	if err != nil {
		return err
	}
	if res.Wrote {
		c.wrote(res.Doc)
	}
	r.Step, r.StepStarted, r.Message, r.Version = d.Step, now.UTC().Round(0), d.Message, res.Doc.Meta.Version
	if _, err := c.put(ctx, by, r, rev); err != nil {
		return err
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: rollout.EventStep, Subject: r.Target, Version: res.Doc.Meta.Version, Reason: reason})
	return nil
}

// abort records r aborted as the driver decided, judged being the version
// it decided on (0: the deployment is gone), then finishes it as every
// abort is finished: with the rollback, when d has one.
func (c *Control) abort(ctx context.Context, by actor, r rollout.Rollout, rev int64, d rollout.Decision, judged uint64, now time.Time) error {
	r = aborted(r, d.Message)
	rev, err := c.put(ctx, by, r, rev)
	if err != nil {
		return err
	}
	_, err = c.finishAbort(ctx, by.author, r, rev, abortRollback{why: d.Message, skip: d.Mutate == nil, judged: judged})
	return err
}

// health is this instance's guard view of the rollout's target: the
// pool's window, or the flag-on cohort's. It is known when the guard
// judged it within viewMaxAge of now, at the document's version or later.
func (c *Control) health(r rollout.Rollout, doc configstore.Document, now time.Time) rollout.Health {
	h := rollout.Health{MinSamples: guard.Compile(doc.Config.Guard).MinRequests}
	t, err := rollout.ParseTarget(r.Target)
	if err != nil {
		return h
	}
	view, ok := c.guardView(r.Deployment)
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
	h.Known = now.Sub(view.Updated) <= viewMaxAge && view.Version >= doc.Meta.Version
	return h
}

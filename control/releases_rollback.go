package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// A release rollback is asked for by an operator (RequestRollback), who
// gets the plan; the plan is written into the release record, and the
// elected driver (Tick) runs its steps one at a time in release.StepOrder,
// recording each step's start, end and result before the next, with
// writes fenced by its leadership. A driver that dies mid-rollback leaves
// the record saying which steps finished; the next elected instance
// carries on from the first step not finished, running again a step that
// had started (every step is idempotent: it sets values, it does not
// apply differences).

// Event kinds of release rollbacks (configstore.Event.Kind).
const (
	EventReleaseRollbackStep   = "release_rollback_step"
	EventReleaseRolledBack     = "release_rolled_back"
	EventReleaseRollbackFailed = "release_rollback_failed"
	// EventReleaseRollback: a rollback was asked for (its plan recorded).
	EventReleaseRollback = "release_rollback"
	// EventReleaseRedeployed: a previous release took traffic again on
	// the standby pool.
	EventReleaseRedeployed = "release_redeployed"
)

// ErrNothingToUndo refuses the rollback of an open release that has
// changed nothing yet.
var ErrNothingToUndo = errors.New("control: nothing to undo")

// releaseSource is the source of the versions a release rollback writes:
// the control plane's, not an operator's.
const releaseSource = configstore.SourceRelease

// healthMaxAge bounds how long ago, in health-check intervals, a pool
// taking traffic back must have passed its checks.
const healthMaxAge = 3

// RollbackOptions qualify RequestRollback.
type RollbackOptions struct {
	// Plan only computes the plan and records nothing.
	Plan bool
	// RestoreData restores the migrations' data snapshots after the
	// schema's down.
	RestoreData bool
	// Force overwrites what changed since the release, and passes the
	// compatibility gate and the health check; it is recorded.
	Force bool
}

// RollbackResult is what RequestRollback did.
type RollbackResult struct {
	// Release is the record after the request (with Plan, as it is).
	Release release.Release
	// Steps is the plan.
	Steps []release.Step
	// NoOp, when not empty, says why nothing was done: the release is
	// rolled back already, or its rollback is under way.
	NoOp string
}

// RequestRollback plans the rollback of release idOrName from the state
// now and, unless o.Plan, records it (the release becomes rolling_back)
// for the elected driver to run. A release rolled back already, or being
// rolled back, is a no-op that says so; an open release with nothing to
// undo is ErrNothingToUndo; a release needing a database that is not
// configured is a *gateway.FieldError. A refusal changes nothing.
func (c *Control) RequestRollback(ctx context.Context, op Op, idOrName string, o RollbackOptions) (RollbackResult, error) {
	r, rev, err := c.store.FindRelease(ctx, idOrName)
	if err != nil {
		return RollbackResult{}, err
	}
	switch r.Status {
	case release.RolledBack:
		return RollbackResult{Release: r, Steps: r.Rollback.Steps,
			NoOp: fmt.Sprintf("release %s (%s) was rolled back already, at %s; nothing to do", r.Name, r.ID, r.Rollback.Finished.Format(time.RFC3339))}, nil
	case release.RollingBack:
		return RollbackResult{Release: r, Steps: r.Rollback.Steps,
			NoOp: fmt.Sprintf("release %s (%s) is being rolled back since %s; nothing more to do (switchback release show %s follows it)", r.Name, r.ID, r.Rollback.Requested.Format(time.RFC3339), r.ID)}, nil
	}
	now, err := c.releaseNow(ctx, r)
	if err != nil {
		return RollbackResult{}, err
	}
	steps := release.PlanRollback(r, now, release.PlanOptions{RestoreData: o.RestoreData, Force: o.Force})
	if !release.Undoes(steps) && r.Status == release.Open {
		return RollbackResult{Release: r, Steps: steps}, fmt.Errorf("%w: release %s (%s) is open and has changed nothing yet, so there is nothing to roll back: make its changes and finish it (switchback release finish %s)", ErrNothingToUndo, r.Name, r.ID, r.ID)
	}
	if o.Plan {
		return RollbackResult{Release: r, Steps: steps}, nil
	}
	r.Status = release.RollingBack
	r.Rollback = &release.Rollback{Requested: c.now().UTC().Round(0), By: op.Author, Reason: op.Reason,
		RestoreData: o.RestoreData, Force: o.Force, Steps: steps}
	if _, err := c.store.PutRelease(ctx, r, rev); err != nil {
		return RollbackResult{}, err
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: EventReleaseRollback, Subject: r.ID,
		Reason: withWhy(fmt.Sprintf("rollback of release %s requested by %s", r.Name, op.Author), op.Reason)})
	return RollbackResult{Release: r, Steps: steps}, nil
}

// releaseNow reads the state r's rollback is planned against.
func (c *Control) releaseNow(ctx context.Context, r release.Release) (release.Now, error) {
	doc, err := c.store.Get(ctx, r.Deployment)
	if err != nil {
		return release.Now{}, err
	}
	now := release.Now{State: stateOf(doc)}
	after := release.State{}
	if r.After != nil {
		after = *r.After
	}
	for _, name := range slices.Sorted(maps.Keys(union(r.Before.Services, after.Services))) {
		sd, err := c.store.GetService(ctx, name)
		if errors.Is(err, configstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return release.Now{}, err
		}
		if now.Services == nil {
			now.Services = map[string]uint64{}
		}
		now.Services[name] = sd.Meta.Version
	}
	for _, id := range after.ChangeSets {
		cs, err := c.store.GetChangeSet(ctx, id)
		if err != nil {
			return release.Now{}, err
		}
		if cs.RevertedBy != "" {
			if now.Reverted == nil {
				now.Reverted = map[string]string{}
			}
			now.Reverted[id] = cs.RevertedBy
		}
	}
	dbs := union(r.Before.Databases, after.Databases)
	for db := range r.Databases {
		dbs[db] = 0
	}
	for _, db := range slices.Sorted(maps.Keys(dbs)) {
		if err := c.checkDatabase(db); err != nil {
			return release.Now{}, err
		}
		v, err := c.schemas.Version(ctx, db)
		if err != nil {
			return release.Now{}, &SchemaError{Database: db, Err: err}
		}
		if now.Databases == nil {
			now.Databases = map[string]int64{}
		}
		now.Databases[db] = v
		to, ok := r.Before.Databases[db]
		if !ok || v <= to {
			continue
		}
		st, err := c.schemas.Applied(ctx, db)
		if err != nil {
			return release.Now{}, &SchemaError{Database: db, Err: err}
		}
		var undo []migrate.Status
		for _, s := range slices.Backward(st) {
			if s.Version > to && s.State == "applied" {
				undo = append(undo, s)
			}
		}
		if now.Undo == nil {
			now.Undo, now.Refused = map[string][]release.Migration{}, map[string]string{}
		}
		now.Undo[db] = migrations(undo)
		if _, err := c.schemas.PlanDown(ctx, db, to); err != nil {
			now.Refused[db] = err.Error()
		}
	}
	return now, nil
}

// checkDatabase refuses a database the gateway has not been configured
// with.
func (c *Control) checkDatabase(db string) error {
	var names []string
	if c.schemas != nil {
		names = c.schemas.Names()
	}
	if slices.Contains(names, db) {
		return nil
	}
	want := "a database configured with the `database NAME DSN` global option; none is configured"
	if len(names) > 0 {
		want = "a database configured with the `database NAME DSN` global option: " + strings.Join(names, ", ")
	}
	return &gateway.FieldError{Field: "databases", Value: strconv.Quote(db), Want: want}
}

func union[V any](a, b map[string]V) map[string]V {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]V{}
	}
	maps.Copy(out, b)
	return out
}

// stateOf is a deployment document as the release package sees it.
func stateOf(doc configstore.Document) release.State {
	st := release.State{DeploymentVersion: doc.Meta.Version, Weights: maps.Clone(doc.Config.Weights),
		Pools: map[string]release.PoolState{}, At: doc.Meta.Time}
	for name, f := range doc.Config.Flags {
		if st.Flags == nil {
			st.Flags = map[string]float64{}
		}
		st.Flags[name] = f.Percent
	}
	for name, p := range doc.Config.Pools {
		st.Pools[name] = release.PoolState{Upstreams: slices.Clone(p.Upstreams), Label: p.Release}
	}
	return st
}

// tickReleases runs, as leader, every rollback under way to its end (or
// to a failed step), one recorded step at a time.
func (c *Control) tickReleases(ctx context.Context, by actor) {
	// Releases are kept for good, and the tick runs four times a second:
	// list them only when one was written since, or a rollback was under
	// way at the last listing (a step that failed to write is tried again).
	mark, err := c.store.ReleasesMark(ctx)
	if err != nil {
		c.log.Debug("releases: reading their mark", zap.Error(err))
		return
	}
	c.releasesMu.Lock()
	idle := c.releasesIdle && mark == c.releasesMark
	c.releasesMu.Unlock()
	if idle {
		return
	}
	rs, err := c.store.ListReleases(ctx, "")
	if err != nil {
		c.log.Debug("releases: listing", zap.Error(err))
		return
	}
	busy := false
	defer func() {
		c.releasesMu.Lock()
		c.releasesMark, c.releasesIdle = mark, !busy
		c.releasesMu.Unlock()
	}()
	for _, r := range rs {
		if r.Status != release.RollingBack {
			continue
		}
		busy = true
		for ctx.Err() == nil {
			more, err := c.rollbackStep(ctx, by, r.ID)
			if err != nil {
				c.log.Warn("releases: rollback step; trying again on the next tick", zap.String("release", r.ID), zap.Error(err))
				break
			}
			if !more {
				break
			}
		}
	}
}

// RollbackStep runs the next step of release id's rollback as leader
// (the elected driver does this on every tick) and records its outcome.
// It reports whether steps remain. A rollback that is not under way is
// left alone.
func (c *Control) RollbackStep(ctx context.Context, leader *configstore.Leader, id string) (more bool, err error) {
	return c.rollbackStep(ctx, actor{author: c.instance, leader: leader}, id)
}

func (c *Control) rollbackStep(ctx context.Context, by actor, id string) (bool, error) {
	r, rev, err := c.store.GetRelease(ctx, id)
	if err != nil {
		return false, err
	}
	if r.Status != release.RollingBack || r.Rollback == nil {
		return false, nil
	}
	rb := r.Rollback
	i := slices.IndexFunc(rb.Steps, func(s release.Step) bool { return s.Status == release.StepPending })
	if i < 0 {
		r.Status, rb.Finished = release.RolledBack, c.now().UTC().Round(0)
		if _, err := c.store.PutRelease(ctx, r, rev, by.opts()...); err != nil {
			return false, err
		}
		c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: EventReleaseRolledBack, Subject: r.ID,
			Reason: fmt.Sprintf("release %s rolled back in %s", r.Name, rb.Finished.Sub(rb.Requested).Round(time.Millisecond))})
		return false, nil
	}
	s := &rb.Steps[i]
	if s.Started.IsZero() {
		// Recorded before the step runs: a driver that dies now leaves a
		// started step, which the next one runs again.
		s.Started = c.now().UTC().Round(0)
		if rev, err = c.store.PutRelease(ctx, r, rev, by.opts()...); err != nil {
			return false, err
		}
	}
	result, stepErr := c.runStep(ctx, by, r, i)
	if errors.Is(stepErr, configstore.ErrNotLeader) || errors.Is(stepErr, configstore.ErrUnavailable) || ctx.Err() != nil {
		return false, stepErr // not the step's fault: the next driver runs it again
	}
	var wait *healthPendingError
	if errors.As(stepErr, &wait) && c.now().Sub(s.Started) < wait.patience {
		// A driver just elected or reloaded has no health results yet:
		// its checks come within an interval. Failing the rollback for
		// that would make an operator ask again for nothing.
		return false, stepErr
	}
	s.Finished = c.now().UTC().Round(0)
	s.Status, s.Result = release.StepDone, result
	kind := EventReleaseRollbackStep
	if stepErr != nil {
		s.Status, s.Result = release.StepFailed, stepErr.Error()+"; once it is fixed, ask for the rollback again: steps that are done are skipped"
		r.Status, rb.Finished = release.RollbackFailed, s.Finished
		kind = EventReleaseRollbackFailed
	}
	if _, err := c.store.PutRelease(ctx, r, rev, by.opts()...); err != nil {
		return false, err
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: kind, Subject: r.ID,
		Reason: fmt.Sprintf("release %s rollback step %d/%d (%s) %s in %s: %s", r.Name, i+1, len(rb.Steps), s.Kind, s.Status,
			s.Finished.Sub(s.Started).Round(time.Millisecond), s.Result)})
	return stepErr == nil, nil
}

// runStep does step i of r's rollback and says what it wrote.
func (c *Control) runStep(ctx context.Context, by actor, r release.Release, i int) (string, error) {
	s := r.Rollback.Steps[i]
	reason := fmt.Sprintf("release %s (%s) rollback step %d/%d: %s", r.Name, r.ID, i+1, len(r.Rollback.Steps), s.Kind)
	if r.Rollback.Force {
		reason += " (forced)"
	}
	meta := configstore.Meta{Author: by.author, Source: releaseSource, Reason: reason}
	switch s.Kind {
	case release.StepFlags:
		return c.stepFlags(ctx, by, r, s, meta)
	case release.StepTraffic:
		return c.stepTraffic(ctx, by, r, s, meta)
	case release.StepConfig:
		return c.stepConfig(ctx, by, r, s, meta)
	case release.StepSchema:
		return c.stepSchema(ctx, by, s)
	}
	return "", fmt.Errorf("unknown step kind %q", s.Kind)
}

func written(res configstore.Result) string {
	if !res.Wrote {
		return fmt.Sprintf("nothing to write: version %d is so already", res.Doc.Meta.Version)
	}
	return fmt.Sprintf("wrote version %d (%s)", res.Doc.Meta.Version, res.Doc.Meta.Summary)
}

func (c *Control) stepFlags(ctx context.Context, by actor, r release.Release, s release.Step, meta configstore.Meta) (string, error) {
	res, err := c.store.Update(ctx, r.Deployment, 0, meta, func(cfg *gateway.Config) error {
		for name, p := range s.Flags {
			if cfg.Flags == nil {
				cfg.Flags = map[string]gateway.Flag{}
			}
			cfg.Flags[name] = gateway.Flag{Percent: p}
		}
		for _, name := range s.RemoveFlags {
			delete(cfg.Flags, name)
		}
		return nil
	}, by.opts()...)
	if err != nil {
		return "", err
	}
	if res.Wrote {
		c.wrote(res.Doc)
	}
	return written(res), nil
}

func (c *Control) stepTraffic(ctx context.Context, by actor, r release.Release, s release.Step, meta configstore.Meta) (string, error) {
	doc, err := c.store.Get(ctx, r.Deployment)
	if err != nil {
		return "", err
	}
	next := doc.Config.Clone()
	if s.Weights != nil {
		next.Weights = maps.Clone(s.Weights)
	}
	for name, p := range s.Pools {
		next.Pools[name] = gateway.Pool{Upstreams: slices.Clone(p.Upstreams), Release: p.Label}
	}
	var notes []string
	for _, pool := range slices.Sorted(maps.Keys(next.Weights)) {
		if next.Weights[pool] <= doc.Config.Weights[pool] {
			continue
		}
		note, err := c.recentlyHealthy(doc, pool)
		if err != nil && !r.Rollback.Force {
			return "", err
		}
		if err != nil {
			note = err.Error() + "; sent traffic anyway (--force)"
		}
		notes = append(notes, note)
	}
	known := map[string]release.Code{}
	for pool, b := range r.Before.Pools {
		if pool != r.Pool {
			known[pool] = release.BeforeCode(pool, b.Label, r)
		}
	}
	if e := c.gate(ctx, r.Deployment, doc.Config, next, known); e != nil {
		if !r.Rollback.Force {
			return "", fmt.Errorf("refused by the compatibility gate: %w", e)
		}
		notes = append(notes, "forced past the compatibility gate: "+e.Error())
		meta.Reason = trimReason(meta.Reason + "; forced past the compatibility gate (" + e.Contract.File + ")")
	}
	// The pools traffic leaves are the release's, which failed: they must
	// not become the protected way back.
	meta.Fallback = true
	res, err := c.store.Update(ctx, r.Deployment, 0, meta, func(cfg *gateway.Config) error {
		cfg.Weights = maps.Clone(next.Weights)
		for name, p := range s.Pools {
			cfg.Pools[name] = gateway.Pool{Upstreams: slices.Clone(p.Upstreams), Release: p.Label}
		}
		return nil
	}, by.opts()...)
	if err != nil {
		return "", err
	}
	if res.Wrote {
		c.wrote(res.Doc)
	}
	return strings.Join(append([]string{written(res)}, notes...), "; "), nil
}

func trimReason(s string) string {
	if r := []rune(s); len(r) > gateway.MaxReason {
		return string(r[:gateway.MaxReason])
	}
	return s
}

// healthPendingError is a pool with no health check result on this
// instance yet. The driver tries the step again for patience after it
// started (a fresh driver's checks are on their way) before failing it:
// an instance that never checks the pool (it does not serve the
// deployment) cannot hold a rollback for ever.
type healthPendingError struct {
	patience time.Duration
	msg      string
}

func (e *healthPendingError) Error() string { return e.msg }

// recentlyHealthy checks that pool, about to take traffic back, passed
// its active health checks within healthMaxAge intervals, as this
// instance's checker saw it. A deployment without health checks cannot be
// verified; that is said, not refused.
func (c *Control) recentlyHealthy(doc configstore.Document, pool string) (string, error) {
	hc := doc.Config.Health
	if hc == nil || hc.URI == "" {
		return fmt.Sprintf("pool %s not health-checked: the deployment has no health block", pool), nil
	}
	maxAge := healthMaxAge * hc.Interval.Std(gateway.DefaultInterval)
	retained := "not a retained rollback target"
	if until, ok := doc.RetainedUntil(pool, c.now()); ok {
		retained = "retained until " + until.Format(time.RFC3339)
	}
	view, ok := c.guardView(doc.Config.Name)
	h, known := view.Health[pool]
	switch {
	case !ok || !known || h.LastHealthy.IsZero():
		return "", &healthPendingError{patience: maxAge, msg: fmt.Sprintf("pool %s (%s) has no health check result on this instance yet; wait for its checks (every %s), or --force",
			pool, retained, hc.Interval.Std(gateway.DefaultInterval))}
	case !h.Healthy:
		return "", fmt.Errorf("pool %s (%s) fails its health checks: %s; fix it, or --force", pool, retained, h.Error)
	case c.now().Sub(h.LastHealthy) > maxAge:
		return "", fmt.Errorf("pool %s (%s) last passed its health checks at %s, over %s ago; wait for a fresh check, or --force", pool, retained, h.LastHealthy.Format(time.RFC3339), maxAge)
	}
	return fmt.Sprintf("pool %s (%s) passed its health checks at %s", pool, retained, h.LastHealthy.Format(time.RFC3339)), nil
}

// stepConfig reverts the release's change sets, then restores the
// services it changed outside them. A change set's revert is not fenced
// (it is one transaction over many targets); run twice, the second finds
// it reverted already, so a deposed driver's revert changes nothing more.
func (c *Control) stepConfig(ctx context.Context, by actor, r release.Release, s release.Step, meta configstore.Meta) (string, error) {
	var did []string
	for _, id := range s.ChangeSets {
		cs, err := c.store.RevertChangeSet(ctx, id, r.Rollback.Force, meta)
		var rce *configstore.RevertConflictError
		switch {
		case errors.As(err, &rce) && rce.RevertedBy != "":
			did = append(did, fmt.Sprintf("change set %s reverted already by %s", id, rce.RevertedBy))
		case err != nil:
			return "", fmt.Errorf("revert change set %s: %w", id, err)
		default:
			did = append(did, fmt.Sprintf("change set %s reverted by %s", id, cs.ID))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		res, err := c.store.RestoreService(ctx, name, s.Services[name], 0, meta, by.opts()...)
		if err != nil {
			return "", fmt.Errorf("service %s: %w", name, err)
		}
		if res.Wrote {
			did = append(did, fmt.Sprintf("service %s version %d (content of %d)", name, res.Doc.Meta.Version, s.Services[name]))
		} else {
			did = append(did, fmt.Sprintf("service %s already has the content of version %d", name, s.Services[name]))
		}
	}
	return strings.Join(did, "; "), nil
}

func (c *Control) stepSchema(ctx context.Context, by actor, s release.Step) (string, error) {
	var did []string
	for _, db := range slices.Sorted(maps.Keys(s.Databases)) {
		if err := c.checkDatabase(db); err != nil {
			return "", err
		}
		to := s.Databases[db]
		if _, err := c.schemas.PlanDown(ctx, db, to); err != nil {
			return "", err
		}
		// A down cannot be fenced like a store write: check the
		// leadership just before, so a deposed driver does not start one.
		if by.leader != nil {
			select {
			case <-by.leader.Done():
				return "", fmt.Errorf("database %s: %w: not starting the down", db, configstore.ErrNotLeader)
			default:
			}
		}
		undone, err := c.schemas.Down(ctx, db, to, s.RestoreData)
		if err != nil {
			return "", fmt.Errorf("database %s down to %d: %w", db, to, err)
		}
		files := make([]string, len(undone))
		for i, m := range undone {
			files[i] = m.File
		}
		line := fmt.Sprintf("database %s at version %d, undid %s", db, to, strings.Join(files, ", "))
		if len(files) == 0 {
			line = fmt.Sprintf("database %s at version %d already", db, to)
		}
		if s.RestoreData {
			line += ", data snapshots restored"
		}
		did = append(did, line)
	}
	return strings.Join(did, "; "), nil
}

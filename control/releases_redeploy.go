package control

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// DefaultRedeployWait is how long Redeploy waits for the standby pool's
// health checks to pass before it gives up and leaves traffic where it is.
const DefaultRedeployWait = time.Minute

// RedeployOptions qualify Redeploy.
type RedeployOptions struct {
	// Wait bounds the wait for the standby pool's health checks; default
	// DefaultRedeployWait.
	Wait time.Duration
	// Force replaces a standby pool that is the retained rollback target
	// and passes the compatibility gate; recorded in the reasons.
	Force bool
}

// RedeployResult is what Redeploy wrote.
type RedeployResult struct {
	Release release.Release
	// Pool is the standby pool the release's upstreams went on.
	Pool string
	// Deployed is the version that put them there, Moved the one that
	// moved traffic to it.
	Deployed, Moved configstore.Result
	// Health says when the pool passed its health checks.
	Health string
}

// Redeploy is the 10-minute archetype, for teams that keep no live
// previous environment: it puts the previous release's upstreams and
// label (kept in its record) on the standby pool (the one with weight 0),
// waits until this instance's health checks of that pool pass, then moves
// all traffic to it. The compatibility gate is asked before anything is
// written. If the checks do not pass within the wait, traffic stays where
// it was and the error says so; the standby pool keeps the upstreams.
func (c *Control) Redeploy(ctx context.Context, op Op, previous string, o RedeployOptions) (RedeployResult, error) {
	r, _, err := c.store.FindRelease(ctx, previous)
	if err != nil {
		return RedeployResult{}, err
	}
	ps := release.PoolState{Upstreams: r.Upstreams, Label: r.Label}
	if r.After != nil {
		if a, ok := r.After.Pools[r.Pool]; ok && len(ps.Upstreams) == 0 {
			ps = a
		}
	}
	if len(ps.Upstreams) == 0 {
		return RedeployResult{}, &gateway.FieldError{Field: "release", Value: r.ID,
			Want: "a release whose record keeps its upstreams; release " + r.Name + " has none"}
	}
	doc, err := c.store.Get(ctx, r.Deployment)
	if err != nil {
		return RedeployResult{}, err
	}
	if doc.Config.Health == nil || doc.Config.Health.URI == "" {
		return RedeployResult{}, &gateway.FieldError{Field: "health", Value: r.Deployment,
			Want: "a deployment with active health checks (a health block): redeploy moves traffic only once the upstreams pass them"}
	}
	pool, err := standby(doc, r.Pool)
	if err != nil {
		return RedeployResult{}, err
	}
	out := RedeployResult{Release: r, Pool: pool}
	reason := withWhy(fmt.Sprintf("redeploy of release %s (%s) on pool %s", r.Name, r.ID, pool), op.Reason)
	if until, ok := doc.RetainedUntil(pool, c.now()); ok {
		if !o.Force {
			return out, &gateway.FieldError{Field: "pool", Value: pool,
				Want: fmt.Sprintf("a standby pool that is not the retained rollback target; %s is until %s: roll back to it instead, or --force", pool, until.Format(time.RFC3339))}
		}
		reason += "; replaced the retained rollback target (--force)"
	}
	next := doc.Config.Clone()
	next.Pools[pool] = gateway.Pool{Upstreams: slices.Clone(ps.Upstreams), Release: ps.Label}
	next.Weights = map[string]float64{}
	for p := range next.Pools {
		next.Weights[p] = 0
	}
	next.Weights[pool] = 100
	code := release.Code{Pool: pool, Label: ps.Label, Release: r.Name, ReleaseID: r.ID, Databases: r.Databases}
	known := map[string]release.Code{pool: code}
	if e := c.gate(ctx, r.Deployment, doc.Config, next, known); e != nil {
		if !o.Force {
			return out, fmt.Errorf("refused by the compatibility gate: %w", e)
		}
		reason += "; forced past the compatibility gate (" + e.Contract.File + ")"
	}
	meta := configstore.Meta{Author: op.Author, Source: configstore.SourceAPI, Reason: trimReason(reason)}
	out.Deployed, err = c.store.Update(ctx, r.Deployment, op.IfVersion, meta, func(cfg *gateway.Config) error {
		cfg.Pools[pool] = next.Pools[pool]
		return nil
	})
	if err != nil {
		return out, err
	}
	if out.Deployed.Wrote {
		c.wrote(out.Deployed.Doc)
	}
	wait := o.Wait
	if wait <= 0 {
		wait = DefaultRedeployWait
	}
	out.Health, err = c.waitHealthy(ctx, r.Deployment, pool, out.Deployed.Doc.Meta.Version, wait)
	if err != nil {
		return out, err
	}
	out.Moved, err = c.store.Update(ctx, r.Deployment, out.Deployed.Doc.Meta.Version, meta, func(cfg *gateway.Config) error {
		cfg.Weights = maps.Clone(next.Weights)
		return nil
	})
	if err != nil {
		return out, err
	}
	if out.Moved.Wrote {
		c.wrote(out.Moved.Doc)
	}
	c.Record(ctx, configstore.Event{Deployment: r.Deployment, Kind: EventReleaseRedeployed, Subject: r.ID, Version: out.Moved.Doc.Meta.Version, Reason: reason})
	return out, nil
}

// standby picks the pool a redeploy uses: the release's own pool if it
// has no traffic, else the first pool without traffic.
func standby(doc configstore.Document, own string) (string, error) {
	if _, ok := doc.Config.Pools[own]; ok && doc.Config.Weights[own] == 0 {
		return own, nil
	}
	for _, p := range slices.Sorted(maps.Keys(doc.Config.Pools)) {
		if doc.Config.Weights[p] == 0 {
			return p, nil
		}
	}
	var ws []string
	for _, p := range slices.Sorted(maps.Keys(doc.Config.Weights)) {
		ws = append(ws, fmt.Sprintf("%s=%g", p, doc.Config.Weights[p]))
	}
	return "", &gateway.FieldError{Field: "weights", Value: strings.Join(ws, " "),
		Want: "a standby pool with weight 0 to redeploy on; every pool of " + doc.Config.Name + " takes traffic"}
}

// healthPoll is how often waitHealthy looks at the guard's view.
const healthPoll = 100 * time.Millisecond

// waitHealthy waits until this instance's checks of pool pass in a round
// that began after its view reached version v, or until wait ends. The
// checker keeps a pool's state across a change of its upstreams, and a
// round under way when they changed probes the old ones; rounds run one
// after the other, so the round after the first one to finish once the
// view shows v is the first that surely probed the new upstreams.
func (c *Control) waitHealthy(ctx context.Context, name, pool string, v uint64, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(healthPoll)
	defer t.Stop()
	last := "no health check of the new upstreams yet"
	var since, first time.Time // when the view first showed v; the first round finished after
	for {
		if view, ok := c.guardView(name); ok && view.Version >= v {
			h, ok := view.Health[pool]
			switch {
			case since.IsZero():
				since = time.Now()
			case !ok || !h.Checked.After(since):
			case first.IsZero():
				first = h.Checked
			case h.Checked.After(first) && h.Healthy:
				return fmt.Sprintf("pool %s passed its health checks at %s", pool, h.Checked.Format(time.RFC3339)), nil
			case h.Checked.After(first):
				last = "failing: " + h.Error
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pool %s did not pass its health checks within %s (%s); traffic stays where it was, the pool keeps the upstreams: fix them and redeploy again", pool, wait, last)
		case <-t.C:
		}
	}
}

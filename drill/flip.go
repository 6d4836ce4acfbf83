package drill

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/runbook"
)

// flipPattern: the previous pool has all the traffic; a change splits it
// with the new pool (50/50, so the guard has samples in well under a
// second at the drill's rate), and the new pool starts failing.
// Recovered: clients get only good answers from the previous pool. The
// state: the deployment's content, which must be the one before the
// split.
type flipPattern struct {
	prev, next string
	ups        deploymentPools
	orig       original
	guarded    bool
}

func (*flipPattern) Name() string { return "flip" }

func (p *flipPattern) Applicable(ctx context.Context, env *Env, t Trigger) error {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	if t == Guard && d.Guard == nil {
		return fmt.Errorf("%w: deployment %s has no guard block, so nothing falls back by itself", ErrNotApplicable, d.Name)
	}
	return nil
}

func (p *flipPattern) Prepare(ctx context.Context, env *Env) error {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	prev, next, err := pools(d)
	if err != nil {
		return err
	}
	p.prev, p.next, p.orig = prev, next, remember(d)
	if p.ups, err = healthyOn(ctx, env, d, prev, next, "before the drill"); err != nil {
		return err
	}
	p.guarded = d.Guard != nil
	if p.guarded {
		return waitGuardQuiet(ctx, env, guardSubjects(p.ups), 30*time.Second)
	}
	return nil
}

func (p *flipPattern) Capture(ctx context.Context, env *Env) (State, error) {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return nil, err
	}
	return State{"deployment " + d.Name: content(d)}, nil
}

func (p *flipPattern) Break(ctx context.Context, env *Env, _ Trigger) error {
	w := map[string]float64{p.prev: 50, p.next: 50}
	for n := range p.ups {
		if _, ok := w[n]; !ok {
			w[n] = 0
		}
	}
	if _, err := env.Admin.SetWeights(ctx, env.Deployment, w, admin.WriteOptions{Reason: env.reason("split traffic with " + p.next)}); err != nil {
		return err
	}
	return setFault(ctx, env, faultURLs(env, p.ups, p.next), map[string]any{"error_rate": 1})
}

func (p *flipPattern) Rollback(env *Env) []Command {
	return Commands(runbook.Rollback("flip", runbook.Params{Admin: env.AdminURL, Deployment: env.Deployment, Pool: p.prev,
		Pools: slices.Sorted(maps.Keys(p.ups)), Reason: env.reason("roll back the split")}))
}

func (p *flipPattern) Probe(ctx context.Context, env *Env) Answer {
	a := request(ctx, env)
	// An upstream that does not name its pool (no X-Backend-Pool, no
	// echo) is judged by its status alone: the new pool fails every
	// request, so a good status is the previous pool's.
	fromPrev := a.pool == p.prev || a.pool == ""
	return Answer{Good: !a.failed() && a.status < 400 && fromPrev, Failed: a.failed(), Detail: a.String()}
}

func (p *flipPattern) GuardSubject(*Env) string { return "pool:" + p.next }

func (p *flipPattern) Cleanup(ctx context.Context, env *Env) error {
	if p.ups == nil {
		return nil
	}
	if err := setFault(ctx, env, faultURLs(env, p.ups, p.next), nil); err != nil {
		// Not restoring: a pool that may still fail stays off
		// traffic rather than getting its share back.
		return err
	}
	// Traffic back on the new pool while its window still holds the
	// drill's errors would make the guard fall back again.
	if p.guarded {
		if err := waitGuardQuiet(ctx, env, guardSubjects(p.ups), 30*time.Second); err != nil {
			return err
		}
	}
	return restoreOriginal(ctx, env, p.orig)
}

// healthyOn starts a drill from a healthy deployment with all its traffic
// on prev: next's fault injection is cleared, and the weights written if
// they are not so already. It returns each pool's upstreams.
func healthyOn(ctx context.Context, env *Env, d admin.Deployment, prev, next, why string) (deploymentPools, error) {
	ups := deploymentPools{}
	for n, pl := range d.Pools {
		ups[n] = pl.Upstreams
	}
	if err := setFault(ctx, env, faultURLs(env, ups, next), nil); err != nil {
		return nil, err
	}
	if d.Weights[prev] == 100 {
		return ups, nil
	}
	w := map[string]float64{}
	for n := range d.Pools {
		w[n] = 0
	}
	w[prev] = 100
	if _, err := env.Admin.SetWeights(ctx, env.Deployment, w, admin.WriteOptions{Reason: env.reason("all traffic to " + prev + " " + why)}); err != nil {
		return nil, err
	}
	return ups, nil
}

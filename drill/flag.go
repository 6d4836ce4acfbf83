package drill

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/runbook"
)

// DrillFlag is the flag the flag pattern rolls out and breaks: the
// drill's own, so no real feature's cohort is touched.
const DrillFlag = "switchback_drill"

// flagPattern: the drill's flag is at 0%; a change rolls it out to 50%
// and every pool fails the requests that carry it. Recovered: the flag is
// off for everyone (no answer carries it) and answers are good. The
// state: the deployment's content, flag percentages included.
type flagPattern struct {
	ups     deploymentPools
	orig    original
	guarded bool
}

func (*flagPattern) Name() string { return "flag" }

func (p *flagPattern) Applicable(ctx context.Context, env *Env, t Trigger) error {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	if t == Guard && d.Guard == nil {
		return fmt.Errorf("%w: deployment %s has no guard block, so nothing turns a flag off by itself", ErrNotApplicable, d.Name)
	}
	return nil
}

func (p *flagPattern) Prepare(ctx context.Context, env *Env) error {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	p.orig = remember(d)
	p.ups = deploymentPools{}
	for n, pl := range d.Pools {
		p.ups[n] = pl.Upstreams
	}
	if err := p.faults(ctx, env, nil); err != nil {
		return err
	}
	if f, ok := d.Flags[DrillFlag]; !ok || f.Percent != 0 {
		if _, err := env.Admin.SetFlag(ctx, env.Deployment, DrillFlag, 0, admin.WriteOptions{Reason: env.reason("the drill's flag, off")}); err != nil {
			return err
		}
	}
	p.guarded = d.Guard != nil
	if p.guarded {
		return waitGuardQuiet(ctx, env, guardSubjects(p.ups, DrillFlag), 30*time.Second)
	}
	return nil
}

// faults sets body on every pool's upstreams (nil clears them).
func (p *flagPattern) faults(ctx context.Context, env *Env, body any) error {
	for _, pool := range slices.Sorted(mapsKeys(p.ups)) {
		if err := setFault(ctx, env, faultURLs(env, p.ups, pool), body); err != nil {
			return err
		}
	}
	return nil
}

func (p *flagPattern) Capture(ctx context.Context, env *Env) (State, error) {
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return nil, err
	}
	return State{"deployment " + d.Name: content(d)}, nil
}

func (p *flagPattern) Break(ctx context.Context, env *Env, _ Trigger) error {
	if _, err := env.Admin.SetFlag(ctx, env.Deployment, DrillFlag, 50, admin.WriteOptions{Reason: env.reason("roll " + DrillFlag + " out to 50%")}); err != nil {
		return err
	}
	return p.faults(ctx, env, map[string]any{"error_rate": 1, "flag": DrillFlag})
}

func (p *flagPattern) Rollback(env *Env) []Command {
	return Commands(runbook.Rollback("flag", runbook.Params{Admin: env.AdminURL, Deployment: env.Deployment, Flags: []string{DrillFlag},
		Reason: env.reason("turn the flag off")}))
}

func (p *flagPattern) Probe(ctx context.Context, env *Env) Answer {
	a := request(ctx, env)
	return Answer{Good: !a.failed() && a.status < 400 && !slices.Contains(a.flags, DrillFlag), Failed: a.failed(), Detail: a.String()}
}

func (p *flagPattern) GuardSubject(*Env) string { return "flag:" + DrillFlag }

func (p *flagPattern) Cleanup(ctx context.Context, env *Env) error {
	if p.ups == nil {
		return nil
	}
	if err := p.faults(ctx, env, nil); err != nil {
		return err
	}
	if p.guarded {
		if err := waitGuardQuiet(ctx, env, guardSubjects(p.ups, DrillFlag), 30*time.Second); err != nil {
			return err
		}
	}
	return restoreOriginal(ctx, env, p.orig)
}

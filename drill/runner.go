package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
)

// DefaultFlagAfter is the longest trigger to recovered that is not
// flagged: the practice this tool encodes.
const DefaultFlagAfter = 90 * time.Second

// RecoveredAfter is how many consecutive good answers make a recovery;
// the first of them is the recovered time.
const RecoveredAfter = 20

// Options shape a run.
type Options struct {
	// FlagAfter flags a drill whose trigger to recovered takes longer
	// (default DefaultFlagAfter).
	FlagAfter time.Duration
	// Timeout bounds each drill from its trigger to recovered; a drill
	// not recovered by then fails (default FlagAfter + 30 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FlagAfter <= 0 {
		o.FlagAfter = DefaultFlagAfter
	}
	if o.Timeout <= 0 {
		o.Timeout = o.FlagAfter + 30*time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// run is one drill in progress: the result being filled and the clock.
type run struct {
	res   *Result
	start time.Time
	now   func() time.Time
}

// step times fn as a step named name, recording its error.
func (r *run) step(name, command string, fn func() (string, error)) error {
	t := r.now()
	out, err := fn()
	s := result.Step{Name: name, Command: command, StartMS: t.Sub(r.start).Milliseconds(),
		DurationMS: r.now().Sub(t).Milliseconds(), Output: trimOutput(out)}
	if err != nil {
		s.Error = err.Error()
	}
	r.res.Steps = append(r.res.Steps, s)
	return err
}

func (r *run) fail(err error) {
	if r.res.Error == "" {
		r.res.Error = err.Error()
	}
}

func trimOutput(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}

// RunAll drills each pattern with each trigger, in order.
func RunAll(ctx context.Context, env func(Pattern, Trigger) (*Env, error), patterns []Pattern, triggers []Trigger, o Options) []Result {
	var out []Result
	for _, p := range patterns {
		for _, t := range triggers {
			if ctx.Err() != nil {
				return out
			}
			e, err := env(p, t)
			if err != nil {
				out = append(out, Result{Pattern: p.Name(), Trigger: t, Error: err.Error(), Started: time.Now().UTC(), Steps: []result.Step{}})
				continue
			}
			out = append(out, Run(ctx, e, p, t, o))
		}
	}
	return out
}

// Run drills p with trigger t against env and returns what it measured.
// Every failure of the target is in the Result, not returned.
func Run(ctx context.Context, env *Env, p Pattern, t Trigger, o Options) (res Result) {
	o = o.withDefaults()
	r := &run{res: &Result{Pattern: p.Name(), Trigger: t, Deployment: env.Deployment, Target: env.Target,
		FlagAfterMS: o.FlagAfter.Milliseconds(), Steps: []result.Step{}}, now: o.Now}
	r.start = r.now()
	r.res.Started = r.start.UTC()
	// Deferred first, so it runs last: after the cleanup, whose step and
	// error belong to the result.
	defer func() {
		r.res.Durations.Total = r.now().Sub(r.start).Milliseconds()
		res = *r.res
	}()
	if t != Manual && t != Guard {
		r.fail(fmt.Errorf("trigger %q: want manual or guard", t))
		return
	}
	if err := p.Applicable(ctx, env, t); err != nil {
		if !errors.Is(err, ErrNotApplicable) {
			r.fail(fmt.Errorf("check: %w", err))
			return
		}
		r.res.NotApplicable = strings.TrimPrefix(err.Error(), ErrNotApplicable.Error()+": ")
		return
	}
	// Cleanup gets its own context: a cancelled drill must still clear
	// the faults it injected.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		if err := r.step("cleanup", "", func() (string, error) { return "", p.Cleanup(cctx, env) }); err != nil {
			r.fail(fmt.Errorf("cleanup: %w", err))
			r.res.Passed = false
		}
	}()
	r.drill(ctx, env, p, t, o)
	return
}

func (r *run) drill(ctx context.Context, env *Env, p Pattern, t Trigger, o Options) {
	if err := r.step("prepare", "", func() (string, error) { return "", p.Prepare(ctx, env) }); err != nil {
		r.fail(fmt.Errorf("prepare: %w", err))
		return
	}
	var before State
	if err := r.step("capture before", "", func() (s string, err error) { before, err = p.Capture(ctx, env); return }); err != nil {
		r.fail(fmt.Errorf("capture before: %w", err))
		return
	}

	dctx, cancel := context.WithCancel(ctx)
	var (
		trigger time.Time
		probes  *prober
		gw      *guardWatch
	)
	// The probes and the guard watch end with the drill, even a drill
	// that fails half-way.
	defer func() {
		cancel()
		if probes != nil {
			probes.wait()
		}
		if gw != nil {
			gw.wait()
		}
	}()
	switch t {
	case Guard:
		subject := ""
		if g, ok := p.(Guarded); ok {
			subject = g.GuardSubject(env)
		}
		trigger = r.now()
		probes = startProber(dctx, env, p, trigger, o)
		if subject != "" {
			gw = startGuardWatch(dctx, env, subject, trigger, r.now)
		}
		if err := r.step("break", "", func() (string, error) { return "", p.Break(ctx, env, t) }); err != nil {
			r.fail(fmt.Errorf("break: %w", err))
			return
		}
	case Manual:
		broke := r.now()
		if g, ok := p.(Guarded); ok {
			defer r.noteGuard(ctx, env, g.GuardSubject(env), broke)
		}
		if err := r.step("break", "", func() (string, error) { return "", p.Break(ctx, env, t) }); err != nil {
			r.fail(fmt.Errorf("break: %w", err))
			return
		}
		// The rollback is run from a state clients see as broken, as an
		// on-call engineer would: otherwise the drill proves nothing.
		if err := r.step("clients see the fault", "", func() (string, error) { return waitBroken(ctx, env, p, o) }); err != nil {
			r.fail(err)
			return
		}
		trigger = r.now()
		probes = startProber(dctx, env, p, trigger, o)
		for _, c := range p.Rollback(env) {
			line := "switchback " + shellJoin(c.Args)
			if err := r.step("rollback: "+c.Explain, line, func() (string, error) { return env.CLI.Run(ctx, c.Args) }); err != nil {
				r.fail(fmt.Errorf("rollback command %s: %w", line, err))
				break
			}
		}
		r.res.Durations.Decided = result.Ms(r.now().Sub(trigger))
	}

	r.res.TriggerAtMS = trigger.Sub(r.start).Milliseconds()
	var rec probeOutcome
	_ = r.step("wait for recovery", "", func() (string, error) {
		rec = probes.wait()
		if !rec.recovered && ctx.Err() != nil {
			return rec.last, fmt.Errorf("interrupted before clients recovered: %w", ctx.Err())
		}
		if !rec.recovered {
			return rec.last, fmt.Errorf("clients did not recover within %s of the trigger; last answer: %s", o.Timeout, rec.last)
		}
		return "", nil
	})
	cancel()
	r.res.Requests, r.res.FailedRequests = rec.requests, rec.failed
	if gw != nil {
		g := gw.wait()
		if !g.detected.IsZero() {
			r.res.Durations.Detected = result.Ms(max(0, g.detected.Sub(trigger)))
		}
		if !g.decided.IsZero() {
			r.res.Durations.Decided = result.Ms(max(0, g.decided.Sub(trigger)))
		}
	}
	switch {
	case !rec.recovered && ctx.Err() != nil:
		r.fail(fmt.Errorf("interrupted before clients recovered (%w); last answer: %s", ctx.Err(), rec.last))
		return
	case !rec.recovered:
		r.fail(fmt.Errorf("not recovered within %s; last answer: %s", o.Timeout, rec.last))
	default:
		d := rec.at.Sub(trigger)
		r.res.Durations.Recovered = result.Ms(d)
		r.res.Flagged = d > o.FlagAfter
	}

	if sp, ok := p.(Stepped); ok && t == Manual {
		steps, err := sp.RollbackSteps(ctx, env, r.start)
		if err != nil {
			r.fail(fmt.Errorf("read the rollback's steps: %w", err))
		}
		// Before "wait for recovery", in whose time they ran, so the
		// steps read in the order things happened.
		at := len(r.res.Steps)
		if n := at - 1; n >= 0 && r.res.Steps[n].Name == "wait for recovery" {
			at = n
		}
		r.res.Steps = slices.Insert(r.res.Steps, at, steps...)
	}

	var after State
	if err := r.step("capture after", "", func() (s string, err error) { after, err = p.Capture(ctx, env); return }); err != nil {
		r.fail(fmt.Errorf("capture after: %w", err))
		return
	}
	r.res.Diff = Compare(before, after)
	r.res.StateEqual = len(r.res.Diff) == 0
	if !r.res.StateEqual {
		parts := make([]string, len(r.res.Diff))
		for i, d := range r.res.Diff {
			parts[i] = d.Part
		}
		r.fail(fmt.Errorf("the state after the rollback differs from the state before in: %s", strings.Join(parts, ", ")))
	}
	r.res.Passed = r.res.Error == "" && rec.recovered && r.res.StateEqual
}

// noteGuard notes a guard that acted on subject during a manual drill:
// then the guard, not (only) the documented command, restored service.
func (r *run) noteGuard(ctx context.Context, env *Env, subject string, since time.Time) {
	evs, err := events(ctx, env)
	if err != nil {
		return
	}
	for _, ev := range evs {
		if ev.Subject == subject && (ev.Kind == "fallback" || ev.Kind == "flag_off") && !ev.Time.Before(since) {
			r.res.Notes = append(r.res.Notes, fmt.Sprintf("the guard also acted (%s of %s at +%s from the break): on a deployment with a guard the manual trigger races it; drill the manual path on one without, or read this drill as guard and command together",
				ev.Kind, subject, ev.Time.Sub(since).Round(time.Millisecond)))
			return
		}
	}
}

// waitBroken probes until an answer is not good: the fault reached the
// clients.
func waitBroken(ctx context.Context, env *Env, p Pattern, o Options) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(rate(env)))
	defer tick.Stop()
	var last string
	for n := 1; ; n++ {
		a := p.Probe(ctx, env)
		if !a.Good {
			return fmt.Sprintf("after %d requests: %s", n, a.Detail), nil
		}
		last = a.Detail
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("clients never saw the fault within %s (%d good answers, last: %s): the drill's break did not break anything", o.Timeout, n, last)
		case <-tick.C:
		}
	}
}

func rate(env *Env) int {
	if env.Rate <= 0 {
		return 100
	}
	return min(env.Rate, 1000)
}

// prober sends the client traffic from the trigger until recovery: one
// probe at a time, at most rate a second, so the order of answers is the
// order of sending and the traffic is bounded by the drill's length.
type prober struct {
	done chan struct{}
	out  probeOutcome
}

type probeOutcome struct {
	recovered        bool
	at               time.Time // when the first of the good run was sent
	requests, failed int64
	last             string
}

func startProber(ctx context.Context, env *Env, p Pattern, trigger time.Time, o Options) *prober {
	pr := &prober{done: make(chan struct{})}
	ctx, cancel := context.WithDeadline(ctx, trigger.Add(o.Timeout))
	go func() {
		defer close(pr.done)
		defer cancel()
		tick := time.NewTicker(time.Second / time.Duration(rate(env)))
		defer tick.Stop()
		var (
			run     int
			runFrom time.Time
		)
		for {
			sent := o.Now()
			a := p.Probe(ctx, env)
			if ctx.Err() != nil {
				return
			}
			pr.out.requests++
			pr.out.last = a.Detail
			switch {
			case a.Good:
				if run == 0 {
					runFrom = sent
				}
				run++
				if run >= RecoveredAfter {
					pr.out.recovered, pr.out.at = true, runFrom
					return
				}
			case a.Failed:
				pr.out.failed++
				run = 0
			default:
				run = 0
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return pr
}

func (pr *prober) wait() probeOutcome {
	<-pr.done
	return pr.out
}

// Compare returns the parts of the state that differ, with a line diff of
// each.
func Compare(before, after State) []result.Difference {
	var out []result.Difference
	for _, k := range sortedKeys(before, after) {
		b, a := before[k], after[k]
		if b == a {
			continue
		}
		out = append(out, result.Difference{Part: k, Before: b, After: a, Lines: lineDiff(b, a)})
	}
	return out
}

// shellJoin quotes args for a shell, for the step's command line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' || r == '%' ||
				(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
		}) {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

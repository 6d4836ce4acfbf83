package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/guard"
)

// content is a deployment's document as the state a rollback restores:
// what a version holds, not its number, time or author (a rollback is a
// new version with the old content).
func content(d admin.Deployment) string {
	b, _ := json.MarshalIndent(struct {
		Pools   any `json:"pools"`
		Weights any `json:"weights"`
		Flags   any `json:"flags"`
		Guard   any `json:"guard,omitempty"`
	}{d.Pools, d.Weights, d.Flags, d.Guard}, "", "  ")
	return string(b)
}

// original remembers a deployment's version before a drill changed it, so
// Cleanup can put its content back.
type original struct {
	version uint64
	content string
}

func remember(d admin.Deployment) original { return original{d.Version, content(d)} }

// restoreOriginal restores o when the deployment's content differs from it.
func restoreOriginal(ctx context.Context, env *Env, o original) error {
	if o.version == 0 {
		return nil
	}
	d, err := env.Admin.Status(ctx, env.Deployment)
	if err != nil {
		return err
	}
	if content(d) == o.content {
		return nil
	}
	_, err = env.Admin.Restore(ctx, env.Deployment, o.version, admin.WriteOptions{Reason: env.reason("put back the deployment as it was before the drill")})
	return err
}

func (env *Env) reason(what string) string {
	if env.Reason != "" {
		return env.Reason + ": " + what
	}
	return "switchback drill: " + what
}

// pools returns the previous pool (the one with the most traffic, the
// first by name on a tie) and the new one (the first other pool).
func pools(d admin.Deployment) (prev, next string, err error) {
	names := slices.Sorted(maps.Keys(d.Pools))
	if len(names) < 2 {
		return "", "", fmt.Errorf("deployment %s has %d pools; a flip drill needs two", d.Name, len(names))
	}
	prev = names[0]
	for _, n := range names {
		if d.Weights[n] > d.Weights[prev] {
			prev = n
		}
	}
	for _, n := range names {
		if n != prev {
			return prev, n, nil
		}
	}
	return prev, next, nil
}

// waitGuardQuiet waits until the guard judges nothing of subject in
// breach and is out of its cooldown, so a drill starts from a quiet guard
// and not from the last drill's window.
func waitGuardQuiet(ctx context.Context, env *Env, subjects []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		v, err := env.Admin.Guard(ctx, env.Deployment)
		loud := ""
		for _, s := range subjects {
			if err != nil || breaching(v, s) || dirty(v, s) {
				loud = s
				break
			}
		}
		if loud == "" && time.Now().After(v.Cooldown) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the guard of %s was still judging %s %s after %s", env.Deployment, loud, describeGuard(v, loud, err), timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// guardSubjects are the guard's subjects in d: each pool, and flags.
func guardSubjects(d deploymentPools, flags ...string) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(d)) {
		out = append(out, "pool:"+p)
	}
	for _, f := range flags {
		out = append(out, "flag:"+f)
	}
	return out
}

// dirty reports whether subject's window still holds errors.
func dirty(v guard.View, subject string) bool {
	kind, name := splitSubject(subject)
	switch kind {
	case "pool":
		return v.Pools[name].Errors > 0
	case "flag":
		return v.Flags[name].On.Errors > 0
	}
	return false
}

func describeGuard(v guard.View, subject string, err error) string {
	if err != nil {
		return "(" + err.Error() + ")"
	}
	kind, name := splitSubject(subject)
	p := v.Pools[name]
	if kind == "flag" {
		p = v.Flags[name].On
	}
	return fmt.Sprintf("(%d requests, %d errors in its window, breach %q, cooldown until %s)", p.Requests, p.Errors, p.Breach, v.Cooldown.Format(time.RFC3339))
}

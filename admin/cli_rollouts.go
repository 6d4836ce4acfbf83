package admin

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a8e2c47e/switchback/rollout"
)

// rolloutFlags are the flags of "switchback rollout".
type rolloutFlags struct {
	target, steps, bake string
}

// rollout runs "switchback rollout VERB NAME".
func (inv *invocation) rollout(ctx context.Context, pos []string, f rolloutFlags, set map[string]bool) int {
	if len(pos) != 2 {
		return inv.usagef("want a verb (start, status, pause, resume, abort) and a deployment name")
	}
	verb, name := pos[0], pos[1]
	if verb != "start" {
		for _, flag := range []string{"target", "steps", "bake"} {
			if set[flag] {
				return inv.usagef("--%s is for rollout start", flag)
			}
		}
	}
	if verb == "status" && set["reason"] {
		return inv.usagef("--reason is for start, pause, resume and abort")
	}
	var (
		st  RolloutStatus
		err error
	)
	switch verb {
	case "start":
		if f.target == "" || f.steps == "" || f.bake == "" {
			return inv.usagef("rollout start needs --target pool:NAME or flag:NAME, --steps like 1,10,50,100 and --bake like 30m")
		}
		steps, perr := parseSteps(f.steps)
		if perr != nil {
			return inv.usagef("%v", perr)
		}
		st, err = inv.c.StartRollout(ctx, name, rollout.Request{Target: f.target, Steps: steps, Bake: f.bake}, inv.wo)
	case "status":
		st, err = inv.c.Rollout(ctx, name)
	case "pause":
		st, err = inv.c.PauseRollout(ctx, name, inv.wo)
	case "resume":
		st, err = inv.c.ResumeRollout(ctx, name, inv.wo)
	case "abort":
		st, err = inv.c.AbortRollout(ctx, name, inv.wo)
	default:
		return inv.usagef("unknown verb %q: want start, status, pause, resume or abort", verb)
	}
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) { printRollout(w, st) })
}

// parseSteps reads "1,10,50,100" (a % after each number is allowed).
func parseSteps(s string) ([]float64, error) {
	parts := strings.Split(s, ",")
	steps := make([]float64, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(p), "%"), 64)
		if err != nil {
			return nil, fmt.Errorf("--steps %q: want percentages separated by commas, like 1,10,50,100", s)
		}
		steps = append(steps, v)
	}
	return steps, nil
}

// printRollout shows a rollout as a table of its steps:
//
//	checkout  rollout r-5f3a9c01  pool:green  running, step 2/4
//	started 2025-06-01 12:00:00Z by alice: "ship v2"
//
//	STEP  VALUE  STATE
//	1/4   1%     baked
//	2/4   10%    baking, 12m30s left
//	3/4   50%    -
//	4/4   100%   -
//
//	bake 30m0s per step; on abort pool:green goes back to 0%
//	baking step 2/4 (pool green 10%)
func printRollout(w io.Writer, st RolloutStatus) {
	n := len(st.Steps)
	state := string(st.State)
	if st.State.Active() {
		if st.Step < 0 {
			state += ", before step 1/" + strconv.Itoa(n)
		} else {
			state += fmt.Sprintf(", step %d/%d", st.Step+1, n)
		}
	}
	fmt.Fprintf(w, "%s  rollout %s  %s  %s\n", oneLine(st.Deployment), oneLine(st.ID), oneLine(st.Target), oneLine(state))
	started := fmt.Sprintf("started %s by %s", formatTime(st.Created), oneLine(firstNonEmpty(st.Author, "unknown")))
	if st.Reason != "" {
		started += fmt.Sprintf(": %q", oneLine(st.Reason))
	}
	fmt.Fprintln(w, started)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tVALUE\tSTATE")
	for i, v := range st.Steps {
		fmt.Fprintf(tw, "%d/%d\t%s\t%s\n", i+1, n, pct(v), oneLine(stepState(st, i)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nbake %s per step; on abort %s goes back to %s\n", time.Duration(st.Bake), oneLine(st.Target), pct(st.From))
	if st.Message != "" {
		fmt.Fprintln(w, oneLine(st.Message))
	}
}

func stepState(st RolloutStatus, i int) string {
	switch {
	case i < st.Step:
		return "baked"
	case i > st.Step:
		return "-"
	}
	switch st.State {
	case rollout.Running:
		if left := time.Duration(st.BakeLeft); left > 0 {
			return "baking, " + roundLeft(left) + " left"
		}
		return "baked, waiting for the guard"
	case rollout.Done:
		return "baked"
	}
	return string(st.State)
}

func roundLeft(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

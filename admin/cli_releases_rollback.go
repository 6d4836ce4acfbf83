package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/release"
)

// ReleaseRollbackOptions qualify Client.RollbackRelease.
type ReleaseRollbackOptions struct {
	// Plan only asks for the plan (a dry run).
	Plan        bool
	RestoreData bool
	Force       bool
}

// RollbackRelease asks for the rollback of release idOrName, or only its
// plan.
func (c *Client) RollbackRelease(ctx context.Context, idOrName string, ro ReleaseRollbackOptions, o WriteOptions) (ReleaseRollback, error) {
	var out ReleaseRollback
	body := releaseRollbackRequest{Plan: ro.Plan, RestoreData: ro.RestoreData, Force: ro.Force, writeFields: writeFields{o.Reason}}
	err := c.do(ctx, http.MethodPost, "/api/v1/releases/"+url.PathEscape(idOrName)+"/rollback", body, o, &out)
	return out, err
}

// RedeployRelease puts release idOrName's upstreams back on the standby
// pool and moves traffic to it once healthy; wait 0 is the server's
// default.
func (c *Client) RedeployRelease(ctx context.Context, idOrName string, force bool, wait time.Duration, o WriteOptions) (ReleaseRedeploy, error) {
	var out ReleaseRedeploy
	body := releaseRedeployRequest{Force: force, writeFields: writeFields{o.Reason}}
	if wait > 0 {
		body.Wait = wait.String()
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/releases/"+url.PathEscape(idOrName)+"/redeploy", body, o, &out)
	return out, err
}

// IsReleaseRollbackVerb reports whether "switchback release VERB" is one
// that runReleaseRollbackCLI runs.
func IsReleaseRollbackVerb(verb string) bool { return verb == "rollback" || verb == "redeploy" }

// releaseVerb is the first argument of "switchback release" that is not
// an option or an option's value: options may come before the verb.
func releaseVerb(args []string) string {
	valued := map[string]bool{"admin": true, "token": true, "reason": true, "wait": true, "if-match": true,
		"pool": true, "label": true, "database": true, "apply": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		}
		if !strings.HasPrefix(a, "-") {
			return a
		}
		if name := strings.TrimLeft(a, "-"); valued[name] {
			i++ // its value is the next argument
		}
	}
	return ""
}

// runReleaseRollbackCLI runs "switchback release rollback ID|NAME [--plan]
// [--restore-data] [--force]" and "switchback release redeploy PREVIOUS
// [--force] [--wait D]"; args start with the verb.
func runReleaseRollbackCLI(ctx context.Context, cmd CommandInfo, args []string, stdout, stderr io.Writer, env func(string) string) int {
	inv, fs := newInvocation(cmd, stdout, stderr, env)
	fs.StringVar(&inv.wo.Reason, "reason", "", "why, recorded with the rollback and its versions (at most 500 characters)")
	var ro ReleaseRollbackOptions
	var wait time.Duration
	fs.BoolVar(&ro.Plan, "plan", false, "rollback: print every step and its expected effect; change nothing")
	fs.BoolVar(&ro.RestoreData, "restore-data", false, "rollback: restore the migrations' data snapshots after the schema's down")
	fs.BoolVar(&ro.Force, "force", false, "overwrite what changed since the release and pass the compatibility gate and the health check (recorded)")
	fs.DurationVar(&wait, "wait", 0, "redeploy: how long to wait for the standby pool's health checks (default 1m)")
	pos, err := cmdline.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return cmdline.ExitOK
	}
	if err != nil {
		return cmdline.ExitUsage
	}
	if len(pos) != 2 || !IsReleaseRollbackVerb(pos[0]) {
		return inv.usagef("want rollback ID|NAME or redeploy PREVIOUS")
	}
	verb, id := pos[0], pos[1]
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if verb == "redeploy" && (set["plan"] || set["restore-data"]) {
		return inv.usagef("--plan and --restore-data are for release rollback")
	}
	if verb == "rollback" && set["wait"] {
		return inv.usagef("--wait is for release redeploy")
	}
	timeout := 30 * time.Second
	if verb == "redeploy" {
		timeout = max(wait, time.Minute) + 30*time.Second // the answer comes once the target is healthy
	}
	if code, ok := inv.connect(timeout); !ok {
		return code
	}
	if verb == "redeploy" {
		res, err := inv.c.RedeployRelease(ctx, id, ro.Force, wait, inv.wo)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) {
			fmt.Fprintf(w, "release %s (%s) redeployed on pool %s: version %d put its upstreams there, version %d moved traffic to it\n%s\n",
				res.Release.Name, res.Release.ID, res.Pool, res.Deployed, res.Moved, res.Health)
		})
	}
	res, err := inv.c.RollbackRelease(ctx, id, ro, inv.wo)
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) { printReleaseRollback(w, res) })
}

func printReleaseRollback(w io.Writer, res ReleaseRollback) {
	r := res.Release
	switch {
	case res.NoOp != "":
		fmt.Fprintln(w, res.NoOp)
		return
	case res.Planned:
		fmt.Fprintf(w, "plan for the rollback of release %s (%s) of %s; nothing was changed:\n", r.Name, r.ID, r.Deployment)
	default:
		fmt.Fprintf(w, "rollback of release %s (%s) of %s requested; the elected instance runs it (switchback release show %s follows it):\n", r.Name, r.ID, r.Deployment, r.ID)
	}
	printSteps(w, res.Steps)
}

func printSteps(w io.Writer, steps []release.Step) {
	for i, s := range steps {
		fmt.Fprintf(w, "%d. %-8s %-8s %s\n", i+1, s.Kind, s.Status, s.Plan)
		for _, d := range s.Drift {
			fmt.Fprintf(w, "   ! %s\n", d)
		}
		if s.Result != "" {
			took := ""
			if !s.Started.IsZero() && !s.Finished.IsZero() {
				took = " (" + s.Finished.Sub(s.Started).Round(time.Millisecond).String() + ")"
			}
			fmt.Fprintf(w, "   → %s%s\n", strings.TrimSpace(s.Result), took)
		}
	}
}

package admin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/triage"
)

// restoreBefore holds the flags of "switchback restore NAME --before ...".
type restoreBefore struct {
	before  string
	version uint64
}

// restoreBefore runs "switchback restore NAME --before TIME" and
// "--before-version N": one new version equal to the last one before.
func (inv *invocation) restoreBefore(ctx context.Context, pos []string, rb restoreBefore) int {
	if len(pos) != 1 {
		return inv.usagef("want one deployment name with --before or --before-version, and no version")
	}
	if rb.before != "" && rb.version != 0 {
		return inv.usagef("--before %q and --before-version %d: give one of them", rb.before, rb.version)
	}
	if rb.version != 0 {
		return inv.state(inv.c.RestoreBeforeVersion(ctx, pos[0], rb.version, inv.wo))
	}
	t, err := time.Parse(time.RFC3339Nano, rb.before)
	if err != nil {
		return inv.usagef("--before %q: want an RFC 3339 time, like 2026-11-29T17:21:00Z", rb.before)
	}
	return inv.state(inv.c.RestoreBefore(ctx, pos[0], t, inv.wo))
}

// triage runs "switchback triage [NAME]"; without a name it triages every
// deployment.
func (inv *invocation) triage(ctx context.Context, pos []string) int {
	var names []string
	switch len(pos) {
	case 0:
		ds, err := inv.c.List(ctx)
		if err != nil {
			return inv.fail(err)
		}
		for _, d := range ds {
			names = append(names, d.Name)
		}
	case 1:
		names = pos
	default:
		return inv.usagef("want at most one deployment name")
	}
	if len(names) == 0 {
		fmt.Fprintln(inv.stdout, "no deployments")
		return cmdline.ExitOK
	}
	for i, n := range names {
		r, err := inv.c.Triage(ctx, n)
		if err != nil {
			return inv.fail(err)
		}
		if i > 0 && !inv.json {
			fmt.Fprintln(inv.stdout)
		}
		if code := inv.print(func(w io.Writer) { printTriage(w, r) }); code != cmdline.ExitOK {
			return code
		}
	}
	return cmdline.ExitOK
}

// printTriage shows what to do first, then the figures behind it:
//
//	checkout  v3  figures of instance vm:9180 (this instance only, or the fleet's merged figures)
//	2 suspects: run their commands in this order
//
//	1. flag:new_payment_flow
//	   $ switchback flag checkout new_payment_flow 0 --reason 'triage: flag new_payment_flow cohort failing'
//	   new_payment_flow 60% → 0%: its users stay in their pool, without the flag
//	   - on cohort (60%): error rate 50.0% (60 of 120 requests) against 0.0% (80 requests); ...
func printTriage(w io.Writer, r triage.Report) {
	fmt.Fprintf(w, "%s  v%d  %s  figures of %s\n", r.Deployment, r.Version, formatTime(r.Time), r.Scope)
	fmt.Fprintf(w, "(%s)\n\n", r.ScopeNote)
	fmt.Fprintln(w, r.Summary)
	for _, s := range r.Suspects {
		fmt.Fprintf(w, "\n%d. %s\n", s.Rank, s.Subject)
		if s.Command != "" {
			fmt.Fprintf(w, "   $ %s\n", s.Command)
		}
		fmt.Fprintf(w, "   %s\n", s.Effect)
		for _, e := range s.Evidence {
			fmt.Fprintf(w, "   - %s\n", e)
		}
	}
	if rs := r.Restore; rs != nil {
		undoes := make([]string, len(rs.Undoes))
		for i, v := range rs.Undoes {
			undoes[i] = fmt.Sprintf("v%d", v)
		}
		fmt.Fprintf(w, "\nOr in one step, back to v%d (undoes %s):\n   $ %s\n", rs.To, strings.Join(undoes, ", "), rs.Command)
		if rs.Safe {
			fmt.Fprintln(w, "   safe: it leaves no user in a failing population")
		}
		for _, l := range rs.Leaves {
			fmt.Fprintf(w, "   NOT enough on its own: %s\n", l)
		}
	}

	fmt.Fprintf(w, "\nguard: %s\n", r.Guard.Policy)
	for _, g := range r.Guard.Would {
		fmt.Fprintf(w, "  the guard %s\n", g)
	}
	before := "BEFORE"
	if r.Before != nil {
		before = fmt.Sprintf("BEFORE v%d", r.Before.Version)
	}
	fmt.Fprintf(w, "\nwindow %v; %s\n", time.Duration(r.Window), r.Rule)
	if r.Before != nil && r.Before.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Before.Note)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nPOPULATION\tSHARE\tREQUESTS\tERRORS\tP95\t%s\tSTATE\n", before)
	row := func(name, share string, c triage.Compare, state string) {
		b := "-"
		if c.Before != nil {
			b = fmt.Sprintf("%.1f%%, %v", c.Before.ErrorRate, time.Duration(c.Before.P95).Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t%v\t%s\t%s\n", name, share, c.Now.Requests, c.Now.ErrorRate,
			time.Duration(c.Now.P95).Round(time.Millisecond), b, firstNonEmpty(state, "ok"))
	}
	for _, p := range r.Pools {
		state := p.Failing
		if p.ExplainedBy != "" {
			state = "through flag " + p.ExplainedBy + ": " + p.Failing
		} else if state != "" {
			state = "FAILING: " + state
		}
		row("pool "+p.Name, pct(p.Weight), p.Compare, state)
	}
	for _, f := range r.Flags {
		state := ""
		if f.Failing != "" {
			state = "FAILING: " + f.Failing
		}
		row("flag "+f.Name+" on", pct(f.Percent), f.On, state)
		row("flag "+f.Name+" off", pct(100-f.Percent), f.Off, "")
	}
	tw.Flush()

	fmt.Fprintln(w, "\nchanges in the last hour:")
	if len(r.Changes) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	fmt.Fprintln(tw, "VERSION\tTIME\tAUTHOR\tSOURCE\tSUMMARY\tREASON")
	for _, c := range r.Changes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", c.Version, formatTime(c.Time), firstNonEmpty(c.Author, "-"),
			firstNonEmpty(string(c.Source), "-"), firstNonEmpty(oneLine(c.Summary), "-"), firstNonEmpty(oneLine(c.Reason), "-"))
	}
	tw.Flush()
}

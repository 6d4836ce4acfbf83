package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/release"
)

// releaseFlags are the flags of "switchback release".
type releaseFlags struct {
	pool, label, apply string
	databases          schemaNeeds
	stdin              io.Reader
}

// schemaNeeds is the repeatable --database NAME=VERSION or
// NAME=MIN..VERSION.
type schemaNeeds map[string]release.SchemaNeed

func (n schemaNeeds) String() string { return "" }

func (n schemaNeeds) Set(v string) error {
	name, spec, ok := strings.Cut(v, "=")
	lo, hi, ranged := strings.Cut(spec, "..")
	if !ranged {
		lo, hi = spec, spec
	}
	version, err1 := strconv.ParseInt(hi, 10, 64)
	minVersion, err2 := strconv.ParseInt(lo, 10, 64)
	if !ok || name == "" || err1 != nil || err2 != nil {
		return fmt.Errorf("%q: want NAME=VERSION, or NAME=MIN..VERSION when the code also works with older schemas, like main=7..8", v)
	}
	if _, dup := n[name]; dup {
		return fmt.Errorf("database %q given twice", name)
	}
	n[name] = release.SchemaNeed{Version: version, MinVersion: minVersion}
	return nil
}

// runReleaseCLI runs "switchback release VERB ...".
func runReleaseCLI(ctx context.Context, cmd CommandInfo, args []string, stdout, stderr io.Writer, env func(string) string) int {
	inv, fs := newInvocation(cmd, stdout, stderr, env)
	fs.StringVar(&inv.wo.Reason, "reason", "", "start, finish: why, recorded with the release (at most 500 characters)")
	fs.Uint64Var(&inv.wo.IfMatch, "if-match", 0, "start: only if the deployment is still at `VERSION`")
	f := releaseFlags{databases: schemaNeeds{}, stdin: os.Stdin}
	fs.StringVar(&f.pool, "pool", "", "start: the `POOL` the release ships to")
	fs.StringVar(&f.label, "label", "", "start: the release's `LABEL` (code version), put on the pool with --apply")
	fs.Var(f.databases, "database", "start: the schema the code needs, `NAME=VERSION` or NAME=MIN..VERSION (repeatable)")
	fs.StringVar(&f.apply, "apply", "", "start: make the release in one step: a JSON `FILE` (- for standard input) with pool_upstreams, changes, weights, flags")
	format := fs.String("format", "text", "affected: `text` (a table), csv (with a header row) or json")
	pos, err := cmdline.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return cmdline.ExitOK
	}
	if err != nil {
		return cmdline.ExitUsage
	}
	if code, ok := inv.connect(60 * time.Second); !ok {
		return code
	}
	if len(pos) == 0 {
		return inv.usagef("want a verb: start, finish, list, show, rollback, redeploy or affected")
	}
	verb, rest := pos[0], pos[1:]
	if verb != "start" {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		for _, name := range []string{"pool", "label", "database", "apply", "if-match"} {
			if set[name] {
				return inv.usagef("--%s is for release start", name)
			}
		}
	}
	if verb == "affected" {
		return inv.releaseAffected(ctx, rest, *format)
	}
	return inv.release(ctx, verb, rest, f)
}

func (inv *invocation) release(ctx context.Context, verb string, rest []string, f releaseFlags) int {
	switch verb {
	case "start":
		if len(rest) < 2 || f.pool == "" {
			return inv.usagef("release start: want a deployment, a release name, --pool POOL and the upstreams that run it (optional)")
		}
		req := ReleaseRequest{Deployment: rest[0], Name: rest[1], Pool: f.pool, Label: f.label, Upstreams: rest[2:]}
		if len(f.databases) > 0 {
			req.Databases = f.databases
		}
		if f.apply != "" {
			a, err := readApply(f.apply, f.stdin)
			if err != nil {
				return inv.usagef("--apply: %v", err)
			}
			req.Apply = &a
		}
		return inv.releaseView(inv.c.StartRelease(ctx, req, inv.wo))
	case "finish":
		if len(rest) != 1 {
			return inv.usagef("release finish: want a release id or name")
		}
		return inv.releaseView(inv.c.FinishRelease(ctx, rest[0], inv.wo))
	case "show":
		if len(rest) != 1 {
			return inv.usagef("release show: want a release id or name")
		}
		return inv.releaseView(inv.c.Release(ctx, rest[0]))
	case "list":
		if len(rest) > 1 {
			return inv.usagef("release list: want at most one deployment name")
		}
		dep := ""
		if len(rest) == 1 {
			dep = rest[0]
		}
		list, err := inv.c.Releases(ctx, dep)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printReleases(w, list) })
	}
	return inv.usagef("unknown verb %q: want start, finish, list, show, rollback, redeploy or affected", verb)
}

// readApply reads --apply's JSON as strictly as the API would, so a
// misspelt key is not dropped before it is sent.
func readApply(arg string, stdin io.Reader) (ReleaseApply, error) {
	b, err := readJSONArg(arg, stdin)
	if err != nil {
		return ReleaseApply{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a ReleaseApply
	if err := dec.Decode(&a); err != nil {
		return ReleaseApply{}, fmt.Errorf("%s: %v; want an object with pool_upstreams, changes, weights, flags, force", arg, err)
	}
	return a, nil
}

func (inv *invocation) releaseView(v ReleaseView, err error) int {
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) { printRelease(w, v) })
}

func printReleases(w io.Writer, list []release.Release) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no releases")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tDEPLOYMENT\tPOOL\tSTATUS\tSTARTED\tBY")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", oneLine(r.ID), oneLine(r.Name), oneLine(r.Deployment), oneLine(r.Pool),
			oneLine(string(r.Status)), formatTime(r.Started), oneLine(firstNonEmpty(r.Author, "-")))
	}
	tw.Flush()
}

// printRelease shows a release, what it changed and its timeline:
//
//	shop  release r-20261129-204512-3f9a  v2  finished
//	pool green  label v2  upstreams 10.0.0.7:8080
//	started 2026-11-29 20:45:12Z by ci: "pipeline 12"; finished 2026-11-29 20:46:03Z
//	databases: main needs 8 (works from 7)
//
//	              BEFORE              AFTER
//	deployment    v3                  v6
//	weights       blue=100% green=0%  blue=0% green=100%
//	...
//
//	TIME                  WHAT                  SUMMARY
//	2026-11-29 20:45:12Z  event release_started ...
func printRelease(w io.Writer, v ReleaseView) {
	r := v.Release
	fmt.Fprintf(w, "%s  release %s  %s  %s\n", oneLine(r.Deployment), oneLine(r.ID), oneLine(r.Name), oneLine(string(r.Status)))
	fmt.Fprintf(w, "pool %s  label %s  upstreams %s\n", oneLine(r.Pool), oneLine(firstNonEmpty(r.Label, "-")),
		oneLine(firstNonEmpty(strings.Join(r.Upstreams, ", "), "-")))
	line := fmt.Sprintf("started %s by %s", formatTime(r.Started), oneLine(firstNonEmpty(r.Author, "unknown")))
	if r.Reason != "" {
		line += fmt.Sprintf(": %q", oneLine(r.Reason))
	}
	if !r.Finished.IsZero() {
		line += "; finished " + formatTime(r.Finished)
	}
	fmt.Fprintln(w, line)
	if len(r.Databases) > 0 {
		var needs []string
		for _, db := range slices.Sorted(maps.Keys(r.Databases)) {
			n := r.Databases[db]
			s := fmt.Sprintf("%s needs %d", oneLine(db), n.Version)
			if n.MinVersion != n.Version {
				s += fmt.Sprintf(" (works from %d)", n.MinVersion)
			}
			needs = append(needs, s)
		}
		fmt.Fprintf(w, "databases: %s\n", strings.Join(needs, ", "))
	}

	fmt.Fprintln(w)
	after := release.State{}
	if r.After != nil {
		after = *r.After
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tBEFORE\tAFTER")
	afterOr := func(s string) string {
		if r.After == nil {
			return "(open)"
		}
		return s
	}
	fmt.Fprintf(tw, "deployment\tv%d\t%s\n", r.Before.DeploymentVersion, afterOr(fmt.Sprintf("v%d", after.DeploymentVersion)))
	fmt.Fprintf(tw, "weights\t%s\t%s\n", percents(r.Before.Weights), afterOr(percents(after.Weights)))
	fmt.Fprintf(tw, "flags\t%s\t%s\n", percents(r.Before.Flags), afterOr(percents(after.Flags)))
	fmt.Fprintf(tw, "services\t%s\t%s\n", versions(r.Before.Services), afterOr(versions(after.Services)))
	fmt.Fprintf(tw, "databases\t%s\t%s\n", versions(r.Before.Databases), afterOr(versions(after.Databases)))
	if len(after.ChangeSets) > 0 {
		fmt.Fprintf(tw, "change sets\t-\t%s\n", oneLine(strings.Join(after.ChangeSets, ", ")))
	}
	tw.Flush()

	if rb := r.Rollback; rb != nil {
		fmt.Fprintf(w, "\nrollback requested %s by %s\n", formatTime(rb.Requested), oneLine(firstNonEmpty(rb.By, "unknown")))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STEP\tSTATUS\tTOOK\tRESULT")
		for _, st := range rb.Steps {
			took := "-"
			if !st.Started.IsZero() && !st.Finished.IsZero() {
				took = roundLeft(st.Finished.Sub(st.Started))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", oneLine(string(st.Kind)), oneLine(st.Status), took, oneLine(firstNonEmpty(st.Result, st.Plan)))
		}
		tw.Flush()
	}

	if len(v.Timeline) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHAT\tBY\tSUMMARY")
	for _, e := range v.Timeline {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", formatTime(e.Time), oneLine(timelineWhat(e)), oneLine(firstNonEmpty(e.Author, "-")), oneLine(firstNonEmpty(e.Summary, "-")))
	}
	tw.Flush()
}

func timelineWhat(e control.TimelineEntry) string {
	switch e.Kind {
	case control.TimelineDeploymentVersion:
		return fmt.Sprintf("%s v%d", e.Deployment, e.Version)
	case control.TimelineServiceVersion:
		return fmt.Sprintf("service %s v%d", e.Service, e.Version)
	case control.TimelineChangeSet:
		return "changeset " + e.ChangeSet
	case control.TimelineEvent:
		return e.Event
	case control.TimelineMigration:
		return fmt.Sprintf("%s migration %d", e.Database, e.Migration)
	case control.TimelineRollbackStep:
		s := "rollback " + string(e.Step) + " " + e.Status
		if e.Duration > 0 {
			s += " in " + roundLeft(time.Duration(e.Duration))
		}
		return s
	}
	return e.Kind
}

func percents(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+pct(m[k]))
	}
	return strings.Join(parts, " ")
}

func versions[V int64 | uint64](m map[string]V) string {
	if len(m) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s v%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

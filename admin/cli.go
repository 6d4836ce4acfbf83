package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/printable"
)

// Commands returns the subcommands RunCLI knows, for registering each with
// the host program (Caddy's command line).
func Commands() []CommandInfo { return slices.Clone(commands) }

var commands = []CommandInfo{
	{"triage", "[NAME]", "Name the failing pools and flags, and the commands that undo them in a safe order"},
	{"status", "[NAME]", "Show a deployment's pools, weights, flags and instances, or list all deployments"},
	{"flip", "NAME", "Send all traffic to the other pool, when one of two pools has it all (from a split, use weights)"},
	{"weights", "NAME POOL=PCT...", "Set the traffic split, for example: weights shop blue=70 green=30"},
	{"pool", "NAME POOL UPSTREAM... [--release R] [--force]", "Replace a pool's upstreams and release"},
	{"flag", "NAME FLAG PCT | NAME FLAG --delete", "Roll a feature flag out to PCT percent of subjects, or remove it"},
	{"history", "NAME [--limit N]", "List a deployment's versions, newest first"},
	{"diff", "NAME [--from V] [--to W]", "Show what changed between two versions (default: the last change)"},
	{"restore", "NAME VERSION | NAME --before TIME | NAME --before-version N", "Make a stored version current again, as a new version; --before undoes everything since a time in one step"},
	{"rollback", "NAME", "Undo the last change, as a new version"},
	{"rollout", "start|status|pause|resume|abort NAME [--target pool:P|flag:F --steps 1,10,50,100 --bake 30m]",
		"Move a pool's weight or a flag's percentage up step by step, each step baked and judged by the guard"},
	{"config", "get|put|patch|edit|history|diff|restore|rollback|watch|gray SERVICE [FILE|VERSION|promote|abandon] [--write FILE --exec CMD --signal PID:SIGHUP] [--percent P]",
		"Read, change, undo and deliver a service's versioned configuration"},
	{"changeset", "apply FILE | list | show ID | revert ID [--force]",
		"Change several services and deployments in one transaction, or undo such a change"},
	{"release", "start DEPLOYMENT NAME --pool P [UPSTREAM...] [--label L] [--database DB=V] [--apply FILE] | finish ID | list [DEPLOYMENT] | show ID | " +
		"rollback ID|NAME [--plan] [--restore-data] [--force] | redeploy PREVIOUS [--force] [--wait D] | affected ID [--format text|csv|json]",
		"Record a release (code, traffic, flags, service configuration, schema) as one, with its timeline; roll it back in a safe order, redeploy a previous one, or list the requests it served that may have written data"},
}

// CommandInfo describes one subcommand.
type CommandInfo struct {
	Name  string
	Usage string
	Short string
}

// RunCLI runs one command-line invocation: args[0] is the subcommand
// (status, flip, weights, pool, flag, history, diff, restore, rollback,
// rollout) and the rest its arguments and flags, which may come in any
// order; rollout's first argument is its verb (start, status, pause,
// resume, abort). env reads
// SWITCHBACK_ADMIN and SWITCHBACK_TOKEN. It returns the process exit code:
// cmdline.ExitOK, cmdline.ExitError when the API refused (its message
// and field go to stderr) and cmdline.ExitUsage for a bad command line.
//
// Flags common to every command: --admin URL (default $SWITCHBACK_ADMIN or
// http://127.0.0.1:9180), --token TOKEN (default $SWITCHBACK_TOKEN), --json
// (print the API's JSON instead of text). Commands that change something
// also take --reason TEXT and --if-match VERSION.
func RunCLI(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	if len(args) == 0 || cmdline.IsHelp(args[0]) {
		cliUsage(stderr)
		if len(args) == 0 {
			return cmdline.ExitUsage
		}
		return cmdline.ExitOK
	}
	cmd, ok := findCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "switchback: unknown command %q\n\n", args[0])
		cliUsage(stderr)
		return cmdline.ExitUsage
	}
	if cmd.Name == "config" || cmd.Name == "changeset" {
		return runConfigCLI(ctx, cmd, args[1:], stdout, stderr, env)
	}
	if cmd.Name == "release" {
		if IsReleaseRollbackVerb(releaseVerb(args[1:])) {
			return runReleaseRollbackCLI(ctx, cmd, args[1:], stdout, stderr, env)
		}
		return runReleaseCLI(ctx, cmd, args[1:], stdout, stderr, env)
	}
	inv, fs := newInvocation(cmd, stdout, stderr, env)
	var ifMatch uint64
	switch cmd.Name {
	case "flip", "weights", "pool", "flag", "restore", "rollback":
		fs.StringVar(&inv.wo.Reason, "reason", "", "why, recorded with the new version (at most 500 characters)")
		fs.Uint64Var(&ifMatch, "if-match", 0, "only change if the deployment is still at `VERSION`")
	case "rollout":
		fs.StringVar(&inv.wo.Reason, "reason", "", "why, recorded with the rollout and its versions (at most 500 characters)")
	}
	var (
		limit    int
		from, to uint64
		release  string
		del      bool
		ro       rolloutFlags
		rb       restoreBefore
	)
	switch cmd.Name {
	case "history":
		fs.IntVar(&limit, "limit", 0, "show at most `N` versions (1..1000, default 50)")
	case "diff":
		fs.Uint64Var(&from, "from", 0, "compare from `VERSION` (default: the one before --to)")
		fs.Uint64Var(&to, "to", 0, "compare to `VERSION` (default: the current one)")
	case "pool":
		fs.StringVar(&release, "release", "", "the pool's release label")
		fs.BoolVar(&inv.wo.Force, "force", false, "replace the pool even while it is the retained rollback target")
	case "flip", "weights":
		fs.BoolVar(&inv.wo.Force, "force", false, "send traffic even where the compatibility gate refuses (recorded in the version's reason)")
	case "flag":
		fs.BoolVar(&del, "delete", false, "remove the flag")
	case "restore":
		fs.StringVar(&rb.before, "before", "", "restore the last version written before `TIME` (RFC 3339, like 2026-11-29T17:21:00Z)")
		fs.Uint64Var(&rb.version, "before-version", 0, "restore the version before `N`, undoing N and every later one")
	case "rollout":
		fs.StringVar(&ro.target, "target", "", "start: what to roll out, `pool:NAME or flag:NAME`")
		fs.StringVar(&ro.steps, "steps", "", "start: the `PERCENTAGES` to go through, in increasing order, like 1,10,50,100")
		fs.StringVar(&ro.bake, "bake", "", "start: how long each step holds before the next, a `DURATION` like 30m")
	}
	pos, err := cmdline.Parse(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return cmdline.ExitOK
	}
	if err != nil {
		return cmdline.ExitUsage // the flag package has printed why
	}
	inv.wo.IfMatch = ifMatch

	if code, ok := inv.connect(30 * time.Second); !ok {
		return code
	}
	c := inv.c

	switch cmd.Name {
	case "status":
		return inv.status(ctx, pos)
	case "flip":
		if len(pos) != 1 {
			return inv.usagef("want one deployment name")
		}
		return inv.state(c.Flip(ctx, pos[0], inv.wo))
	case "weights":
		return inv.weights(ctx, pos)
	case "pool":
		if len(pos) < 3 {
			return inv.usagef("want a deployment name, a pool name and at least one upstream")
		}
		return inv.state(c.SetPool(ctx, pos[0], pos[1], gateway.Pool{Upstreams: pos[2:], Release: release}, inv.wo))
	case "flag":
		return inv.flag(ctx, pos, del)
	case "history":
		if len(pos) != 1 {
			return inv.usagef("want one deployment name")
		}
		h, err := c.History(ctx, pos[0], limit)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printHistory(w, h) })
	case "diff":
		if len(pos) != 1 {
			return inv.usagef("want one deployment name")
		}
		d, err := c.Diff(ctx, pos[0], from, to)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printDiff(w, d) })
	case "triage":
		return inv.triage(ctx, pos)
	case "restore":
		if rb.before != "" || rb.version != 0 {
			return inv.restoreBefore(ctx, pos, rb)
		}
		if len(pos) != 2 {
			return inv.usagef("want a deployment name and a version, or --before TIME, or --before-version N")
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(pos[1], "v"), 10, 64)
		if err != nil || v == 0 {
			return inv.usagef("version %q: want a version number, as history shows", pos[1])
		}
		return inv.state(c.Restore(ctx, pos[0], v, inv.wo))
	case "rollback":
		if len(pos) != 1 {
			return inv.usagef("want one deployment name")
		}
		return inv.state(c.Rollback(ctx, pos[0], inv.wo))
	case "rollout":
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		return inv.rollout(ctx, pos, ro, set)
	}
	return inv.usagef("unknown command")
}

func findCommand(name string) (CommandInfo, bool) {
	for _, c := range commands {
		if c.Name == name {
			return c, true
		}
	}
	return CommandInfo{}, false
}

func cliUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: switchback COMMAND [ARGS] [--admin URL] [--token TOKEN] [--json]")
	fmt.Fprintln(w, "\ncommands:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.Name, c.Usage, c.Short)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nchanges take --reason TEXT and --if-match VERSION; run switchback COMMAND -h for a command's flags")
}

// invocation is one command being run.
type invocation struct {
	cmd CommandInfo
	// admin and token are --admin and --token.
	admin, token string
	c            *Client
	wo           WriteOptions
	json         bool
	raw          []byte // the last answer, for --json
	stdout       io.Writer
	stderr       io.Writer
}

// newInvocation starts a command family's invocation and its flags with
// the ones every family has: --admin, --token and --json.
func newInvocation(cmd CommandInfo, stdout, stderr io.Writer, env func(string) string) (*invocation, *flag.FlagSet) {
	inv := &invocation{cmd: cmd, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("switchback "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { commandUsage(stderr, cmd, fs) }
	fs.StringVar(&inv.admin, "admin", firstNonEmpty(env("SWITCHBACK_ADMIN"), DefaultAdminURL), "admin API `URL` ($SWITCHBACK_ADMIN)")
	fs.StringVar(&inv.token, "token", env("SWITCHBACK_TOKEN"), "bearer `token` ($SWITCHBACK_TOKEN; the environment keeps it out of ps)")
	fs.BoolVar(&inv.json, "json", false, "print the API's JSON answer")
	return inv, fs
}

// connect sets up the invocation's client for the admin API given by
// --admin, waiting at most timeout for an answer; with --json it keeps
// the raw answer to print. It returns the usage exit code when --admin is
// no API.
func (inv *invocation) connect(timeout time.Duration) (int, bool) {
	c, err := NewClient(inv.admin, inv.token)
	if err != nil {
		return inv.usagef("%v", err), false
	}
	c.Agent = "cli"
	c.HTTP = &http.Client{Timeout: timeout}
	if inv.json {
		c.raw = func(b []byte) { inv.raw = b }
	}
	inv.c = c
	return 0, true
}

func (inv *invocation) usagef(format string, args ...any) int {
	fmt.Fprintf(inv.stderr, "switchback %s: %s\nusage: switchback %s %s\n", inv.cmd.Name, fmt.Sprintf(format, args...), inv.cmd.Name, inv.cmd.Usage)
	return cmdline.ExitUsage
}

func (inv *invocation) fail(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		msg := oneLine(ae.Message)
		if ae.Field != "" {
			msg += " (field: " + oneLine(ae.Field) + ")"
		}
		fmt.Fprintf(inv.stderr, "switchback %s: %s [HTTP %d]\n", inv.cmd.Name, msg, ae.Status)
		return cmdline.ExitError
	}
	fmt.Fprintf(inv.stderr, "switchback %s: %s\n", inv.cmd.Name, oneLine(err.Error()))
	return cmdline.ExitError
}

// print writes the API's JSON with --json, text otherwise.
func (inv *invocation) print(text func(io.Writer)) int {
	if inv.json {
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(inv.raw), "", "  "); err != nil {
			fmt.Fprintln(inv.stdout, string(bytes.TrimSpace(inv.raw)))
		} else {
			fmt.Fprintln(inv.stdout, buf.String())
		}
		return cmdline.ExitOK
	}
	text(inv.stdout)
	return cmdline.ExitOK
}

func (inv *invocation) state(d Deployment, err error) int {
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) { printDeployment(w, d) })
}

func (inv *invocation) status(ctx context.Context, pos []string) int {
	switch len(pos) {
	case 0:
		ds, err := inv.c.List(ctx)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printList(w, ds) })
	case 1:
		return inv.state(inv.c.Status(ctx, pos[0]))
	}
	return inv.usagef("want at most one deployment name")
}

func (inv *invocation) weights(ctx context.Context, pos []string) int {
	if len(pos) < 2 {
		return inv.usagef("want a deployment name and POOL=PCT for each pool")
	}
	weights := make(map[string]float64, len(pos)-1)
	for _, a := range pos[1:] {
		pool, pct, ok := strings.Cut(a, "=")
		v, err := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64)
		if !ok || pool == "" || err != nil {
			return inv.usagef("%q: want POOL=PERCENT, like blue=70", a)
		}
		if _, dup := weights[pool]; dup {
			return inv.usagef("pool %q given twice", pool)
		}
		weights[pool] = v
	}
	return inv.state(inv.c.SetWeights(ctx, pos[0], weights, inv.wo))
}

func (inv *invocation) flag(ctx context.Context, pos []string, del bool) int {
	if del {
		if len(pos) != 2 {
			return inv.usagef("want a deployment name and a flag name")
		}
		return inv.state(inv.c.DeleteFlag(ctx, pos[0], pos[1], inv.wo))
	}
	if len(pos) != 3 {
		return inv.usagef("want a deployment name, a flag name and a percentage (or --delete)")
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(pos[2], "%"), 64)
	if err != nil {
		return inv.usagef("percentage %q: want a number from 0 to 100", pos[2])
	}
	return inv.state(inv.c.SetFlag(ctx, pos[0], pos[1], v, inv.wo))
}

// commandUsage is a command's --help: its usage line, examples and options.
func commandUsage(w io.Writer, cmd CommandInfo, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: switchback %s %s\n  %s\n\n", cmd.Name, cmd.Usage, cmd.Short)
	if ex := Example(cmd.Name); ex != "" {
		fmt.Fprintf(w, "example:\n  %s\n\n", strings.ReplaceAll(ex, "\n", "\n  "))
	}
	fmt.Fprintln(w, "options (before or after names):")
	fs.PrintDefaults()
}

// Text output.

func printDeployment(w io.Writer, d Deployment) {
	fmt.Fprintf(w, "%s  version %d  store %s\n\n", oneLine(d.Name), d.Version, oneLine(firstNonEmpty(d.Store, "unknown")))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tWEIGHT\tRELEASE\tUPSTREAMS")
	for _, p := range sortedNames(d.Pools) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", oneLine(p), pct(d.Weights[p]), oneLine(firstNonEmpty(d.Pools[p].Release, "-")), oneLine(strings.Join(d.Pools[p].Upstreams, ", ")))
	}
	tw.Flush()
	if len(d.Flags) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "FLAG\tPERCENT")
		for _, f := range sortedNames(d.Flags) {
			fmt.Fprintf(tw, "%s\t%s\n", oneLine(f), pct(d.Flags[f].Percent))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nguard: %s\n", describeGuard(d.Guard))
	fmt.Fprintf(w, "last change: %s\n", describeMeta(d.Meta))
	if len(d.Instances) > 0 {
		parts := make([]string, 0, len(d.Instances))
		for _, in := range sortedNames(d.Instances) {
			v := d.Instances[in]
			s := fmt.Sprintf("%s v%d", oneLine(in), v)
			if v < d.Version {
				s += " (behind)"
			}
			parts = append(parts, s)
		}
		fmt.Fprintf(w, "instances: %s\n", strings.Join(parts, ", "))
	}
}

// describeGuard says in one line when the guard falls back, or that none
// will.
func describeGuard(g *gateway.Guard) string {
	if g == nil {
		return "no guard configured (nothing falls back automatically)"
	}
	p := guard.Compile(g)
	var over []string
	if p.ErrorRate > 0 {
		over = append(over, "error rate > "+pct(g.ErrorRate))
	}
	if p.P95 > 0 {
		over = append(over, "p95 > "+p.P95.String())
	}
	s := fmt.Sprintf("falls back on %s over %v (at least %d requests", strings.Join(over, " or "), p.Window, p.MinRequests)
	if p.Baseline > 0 {
		s += fmt.Sprintf(", and %g× the baseline", p.Baseline)
	}
	return s + ")"
}

func printList(w io.Writer, ds []Deployment) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "no deployments")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tWEIGHTS\tFLAGS\tLAST CHANGE")
	for _, d := range ds {
		weights := make([]string, 0, len(d.Pools))
		for _, p := range sortedNames(d.Pools) {
			weights = append(weights, oneLine(p)+"="+pct(d.Weights[p]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", oneLine(d.Name), d.Version, strings.Join(weights, " "), len(d.Flags), describeMeta(d.Meta))
	}
	tw.Flush()
}

func printHistory(w io.Writer, h []configstore.Meta) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTIME\tAUTHOR\tSOURCE\tSUMMARY\tREASON")
	for _, m := range h {
		summary := m.Summary
		if m.RestoredFrom != 0 && !strings.Contains(summary, "restore") {
			summary = strings.TrimSpace(fmt.Sprintf("restored v%d %s", m.RestoredFrom, summary))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Version, formatTime(m.Time), firstNonEmpty(oneLine(m.Author), "-"),
			firstNonEmpty(oneLine(string(m.Source)), "-"), firstNonEmpty(oneLine(summary), "-"), firstNonEmpty(oneLine(m.Reason), "-"))
	}
	tw.Flush()
}

func printDiff(w io.Writer, d DiffResult) {
	fmt.Fprintf(w, "%s: v%d → v%d\n", oneLine(d.Name), d.From, d.To)
	if len(d.Changes) == 0 {
		fmt.Fprintln(w, "no changes")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range d.Changes {
		fmt.Fprintf(tw, "  %s\t%s → %s\n", oneLine(c.Path), showValue(c.From), showValue(c.To))
	}
	tw.Flush()
}

func describeMeta(m configstore.Meta) string {
	if m.Version == 0 {
		return "-"
	}
	s := fmt.Sprintf("v%d %s by %s", m.Version, formatTime(m.Time), oneLine(firstNonEmpty(m.Author, "unknown")))
	if m.Source != "" {
		s += " (" + oneLine(string(m.Source)) + ")"
	}
	if m.RestoredFrom != 0 && !strings.Contains(m.Summary, "restored") {
		s += fmt.Sprintf(", restored v%d", m.RestoredFrom)
	}
	if m.Summary != "" {
		s += ": " + oneLine(m.Summary)
	}
	if m.Reason != "" {
		s += fmt.Sprintf(" (reason: %q)", oneLine(m.Reason))
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func pct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "%" }

// showValue prints a diff side: absent as "-", anything else as JSON
// (which escapes C0 controls, but not C1 ones or bidirectional overrides).
func showValue(v any) string {
	if v == nil {
		return "-"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return oneLine(fmt.Sprint(v))
	}
	return oneLine(string(b))
}

// oneLine makes text from the API fit for a row of human output: on one
// line, and with anything a terminal would act on (ANSI escapes, carriage
// returns, bidirectional overrides) escaped, so a reason cannot rewrite
// the screen it is shown on. Every string the API answers goes through it
// before it is printed as text; --json prints the answer exactly.
func oneLine(s string) string {
	return printable.Escape(strings.Join(strings.Fields(s), " "))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configclient"
	"github.com/a8e2c47e/switchback/configstore"
)

// configFlags are the flags of "switchback config" and "switchback
// changeset".
type configFlags struct {
	limit      int
	from, to   uint64
	version    uint64
	write      string
	template   string
	execCmd    string
	signal     string
	mode       string
	force      bool
	percent    float64
	instance   string
	stdin      io.Reader
	editorEnv  string
	runCommand func(ctx context.Context, shell string) error
}

// runConfigCLI runs "switchback config VERB SERVICE ..." and "switchback
// changeset VERB ...".
func runConfigCLI(ctx context.Context, cmd CommandInfo, args []string, stdout, stderr io.Writer, env func(string) string) int {
	inv, fs := newInvocation(cmd, stdout, stderr, env)
	fs.StringVar(&inv.wo.Reason, "reason", "", "why, recorded with the new versions (at most 500 characters)")
	fs.Uint64Var(&inv.wo.IfMatch, "if-match", 0, "only change if the service is still at `VERSION`")
	f := configFlags{stdin: os.Stdin, editorEnv: firstNonEmpty(env("VISUAL"), env("EDITOR"), "vi"), runCommand: runShell}
	fs.IntVar(&f.limit, "limit", 0, "history, list: show at most `N` entries (1..1000, default 50)")
	fs.Uint64Var(&f.from, "from", 0, "diff: compare from `VERSION`")
	fs.Uint64Var(&f.to, "to", 0, "diff: compare to `VERSION`")
	fs.Uint64Var(&f.version, "version", 0, "get: show `VERSION` instead of the current one")
	fs.StringVar(&f.write, "write", "", "watch: write every version to `FILE`, atomically")
	fs.StringVar(&f.template, "template", "", "watch: render a Go text/template `FILE` with the configuration instead of writing JSON")
	fs.StringVar(&f.execCmd, "exec", "", "watch: run `COMMAND` (with sh -c) after each write")
	fs.StringVar(&f.signal, "signal", "", "watch: send `PID:SIGNAL` (like 1234:SIGHUP) after each write")
	fs.StringVar(&f.mode, "mode", "sse", "watch: sse (event stream) or poll (long poll)")
	fs.Float64Var(&f.percent, "percent", 0, "gray: the `PERCENT` of instances that get the gray document")
	fs.StringVar(&f.instance, "instance", "", "watch: this instance's `ID`, which decides whether it gets a gray release")
	fs.BoolVar(&f.force, "force", false, "changeset revert: overwrite changes made after the change set")
	pos, err := cmdline.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return cmdline.ExitOK
	}
	if err != nil {
		return cmdline.ExitUsage
	}
	if code, ok := inv.connect(30 * time.Second); !ok {
		return code
	}
	if len(pos) == 0 {
		return inv.usagef("want a verb")
	}
	if cmd.Name == "changeset" {
		return inv.changeset(ctx, pos[0], pos[1:], f)
	}
	if len(pos) < 2 {
		return inv.usagef("want a verb and a service name")
	}
	return inv.config(ctx, pos[0], pos[1], pos[2:], f)
}

func (inv *invocation) service(s Service, err error) int {
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) { printService(w, s) })
}

func (inv *invocation) config(ctx context.Context, verb, name string, rest []string, f configFlags) int {
	args := func(n int, what string) bool {
		if len(rest) != n {
			inv.usagef("config %s: want %s", verb, what)
			return false
		}
		return true
	}
	switch verb {
	case "get":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		s, err := inv.c.GetService(ctx, name, f.version)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printJSON(w, s.Config) })
	case "put", "patch":
		if !args(1, "a service name and a JSON file (- for standard input)") {
			return cmdline.ExitUsage
		}
		doc, err := readJSONArg(rest[0], f.stdin)
		if err != nil {
			return inv.usagef("%v", err)
		}
		if verb == "put" {
			return inv.service(inv.c.PutService(ctx, name, doc, inv.wo))
		}
		return inv.service(inv.c.PatchService(ctx, name, doc, inv.wo))
	case "edit":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		return inv.edit(ctx, name, f)
	case "history":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		h, err := inv.c.ServiceHistory(ctx, name, f.limit)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printHistory(w, h) })
	case "diff":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		d, err := inv.c.ServiceDiff(ctx, name, f.from, f.to)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) { printDiff(w, d) })
	case "restore":
		if !args(1, "a service name and a version") {
			return cmdline.ExitUsage
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(rest[0], "v"), 10, 64)
		if err != nil || v == 0 {
			return inv.usagef("version %q: want a version number, as history shows", rest[0])
		}
		return inv.service(inv.c.RestoreService(ctx, name, v, inv.wo))
	case "rollback":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		return inv.service(inv.c.RollbackService(ctx, name, inv.wo))
	case "watch":
		if !args(0, "a service name") {
			return cmdline.ExitUsage
		}
		return inv.watch(ctx, name, f)
	case "gray":
		if !args(1, "a service name and a patch (JSON, a file or -), promote or abandon") {
			return cmdline.ExitUsage
		}
		if rest[0] == "promote" || rest[0] == "abandon" {
			return inv.service(inv.c.EndGray(ctx, name, rest[0] == "promote", inv.wo))
		}
		if f.percent == 0 {
			return inv.usagef("config gray: want --percent, the share of instances that get the gray document")
		}
		patch, err := readJSONArg(rest[0], f.stdin)
		if err != nil {
			return inv.usagef("%v", err)
		}
		return inv.service(inv.c.StartGray(ctx, name, patch, f.percent, inv.wo))
	}
	return inv.usagef("unknown verb %q: want get, put, patch, edit, history, diff, restore, rollback, watch or gray", verb)
}

// edit opens the editor on the current document, shows the diff, and
// writes the edited document conditional on the version it started from.
func (inv *invocation) edit(ctx context.Context, name string, f configFlags) int {
	cur, err := inv.c.GetService(ctx, name, 0)
	if err != nil {
		return inv.fail(err)
	}
	tmp, err := os.CreateTemp("", name+"-*.json")
	if err != nil {
		return inv.fail(err)
	}
	defer os.Remove(tmp.Name())
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, cur.Config, "", "  ")
	pretty.WriteByte('\n')
	_, werr := tmp.Write(pretty.Bytes())
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return inv.fail(werr)
	}
	if err := f.runCommand(ctx, f.editorEnv+" "+shellQuote(tmp.Name())); err != nil {
		return inv.fail(fmt.Errorf("editor: %w", err))
	}
	edited, err := os.ReadFile(tmp.Name())
	if err != nil {
		return inv.fail(err)
	}
	if _, err := configstore.ParseServiceConfig(edited); err != nil {
		return inv.fail(err)
	}
	changes := configstore.DiffJSON(cur.Config, edited)
	if len(changes) == 0 {
		fmt.Fprintln(inv.stderr, "no changes")
		return cmdline.ExitOK
	}
	printDiff(inv.stderr, DiffResult{Name: name, From: cur.Version, To: cur.Version + 1, Changes: changes})
	o := inv.wo
	o.IfMatch = cur.Version
	return inv.service(inv.c.PutService(ctx, name, edited, o))
}

// watch writes every version of a service to a file, like consul-template,
// and runs a command or signals a process after each write, until ctx
// ends.
func (inv *invocation) watch(ctx context.Context, name string, f configFlags) int {
	if f.write == "" {
		return inv.usagef("config watch needs --write FILE")
	}
	var tmpl *template.Template
	if f.template != "" {
		var err error
		if tmpl, err = template.ParseFiles(f.template); err != nil {
			return inv.usagef("--template %s: %v", f.template, err)
		}
	}
	var pid int
	var sig syscall.Signal
	if f.signal != "" {
		var err error
		if pid, sig, err = parseSignal(f.signal); err != nil {
			return inv.usagef("%v", err)
		}
	}
	err := configclient.Watch(ctx, configclient.Options{URL: inv.admin, Service: name, Token: inv.token, Mode: configclient.Mode(f.mode), Instance: f.instance,
		OnError: func(err error) { fmt.Fprintf(inv.stderr, "switchback config watch: %v\n", err) }},
		func(cfg any, v configclient.Version) {
			out, err := render(tmpl, cfg, v)
			if err == nil {
				err = configclient.WriteFileAtomic(f.write, out, 0o644)
			}
			if err != nil {
				fmt.Fprintf(inv.stderr, "switchback config watch: version %d: %v\n", v.Version, err)
				return
			}
			fmt.Fprintf(inv.stdout, "wrote %s version %d to %s\n", name, v.Version, f.write)
			if f.execCmd != "" {
				if err := f.runCommand(ctx, f.execCmd); err != nil {
					fmt.Fprintf(inv.stderr, "switchback config watch: --exec: %v\n", err)
				}
			}
			if pid != 0 {
				if err := syscall.Kill(pid, sig); err != nil {
					fmt.Fprintf(inv.stderr, "switchback config watch: --signal: %v\n", err)
				}
			}
		})
	if ctx.Err() != nil {
		return cmdline.ExitOK
	}
	return inv.fail(err)
}

func render(tmpl *template.Template, cfg any, v configclient.Version) ([]byte, error) {
	var buf bytes.Buffer
	if tmpl == nil {
		if err := json.Indent(&buf, v.Config, "", "  "); err != nil {
			return nil, err
		}
		buf.WriteByte('\n')
		return buf.Bytes(), nil
	}
	if err := tmpl.Execute(&buf, cfg); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return buf.Bytes(), nil
}

// parseSignal reads PID:SIGNAL, like 1234:SIGHUP or 1234:HUP.
func parseSignal(s string) (int, syscall.Signal, error) {
	p, name, ok := strings.Cut(s, ":")
	pid, err := strconv.Atoi(p)
	if !ok || err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("--signal %q: want PID:SIGNAL, like 1234:SIGHUP", s)
	}
	signals := map[string]syscall.Signal{"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
		"TERM": syscall.SIGTERM, "INT": syscall.SIGINT}
	sig, ok := signals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	if !ok {
		return 0, 0, fmt.Errorf("--signal %q: signal %q: want SIGHUP, SIGUSR1, SIGUSR2, SIGTERM or SIGINT", s, name)
	}
	return pid, sig, nil
}

func runShell(ctx context.Context, shell string) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", shell)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// readJSONArg reads a JSON document from a file, "-" (standard input), or
// the argument itself when it starts with {.
func readJSONArg(arg string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	var err error
	switch {
	case strings.HasPrefix(strings.TrimSpace(arg), "{"):
		b = []byte(arg)
	case arg == "-":
		b, err = io.ReadAll(stdin)
	default:
		b, err = os.ReadFile(arg)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s: not valid JSON", arg)
	}
	return b, nil
}

func printJSON(w io.Writer, b json.RawMessage) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintln(w, buf.String())
}

func printService(w io.Writer, s Service) {
	fmt.Fprintf(w, "%s version %d: %s\n", s.Name, s.Version, describeMeta(s.Meta))
	printJSON(w, s.Config)
	if s.Gray != nil {
		fmt.Fprintf(w, "gray release to %s%% of instances: %s\n", strconv.FormatFloat(s.Gray.Percent, 'f', -1, 64), s.Gray.Summary)
	}
}

func (inv *invocation) changeset(ctx context.Context, verb string, rest []string, f configFlags) int {
	switch verb {
	case "apply":
		if len(rest) != 1 {
			return inv.usagef("changeset apply: want a JSON file (- for standard input)")
		}
		b, err := readJSONArg(rest[0], f.stdin)
		if err != nil {
			return inv.usagef("%v", err)
		}
		var req changeSetRequest
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return inv.usagef("%s: want {\"reason\": ..., \"changes\": [...]}: %v", rest[0], err)
		}
		o := inv.wo
		if o.Reason == "" {
			o.Reason = req.Reason
		}
		cs, err := inv.c.ApplyChangeSet(ctx, req.Changes, o)
		return inv.changeSetResult(cs, err)
	case "list":
		list, err := inv.c.ChangeSets(ctx, f.limit)
		if err != nil {
			return inv.fail(err)
		}
		return inv.print(func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTIME\tAUTHOR\tTARGETS\tREASON")
			for _, cs := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", cs.ID, formatTime(cs.Time), cs.Author, len(cs.Entries), oneLine(cs.Reason))
			}
			tw.Flush()
		})
	case "show":
		if len(rest) != 1 {
			return inv.usagef("changeset show: want a change set id")
		}
		cs, err := inv.c.ChangeSet(ctx, rest[0])
		return inv.changeSetResult(cs, err)
	case "revert":
		if len(rest) != 1 {
			return inv.usagef("changeset revert: want a change set id")
		}
		cs, err := inv.c.RevertChangeSet(ctx, rest[0], f.force, inv.wo)
		return inv.changeSetResult(cs, err)
	}
	return inv.usagef("unknown verb %q: want apply, list, show or revert", verb)
}

func (inv *invocation) changeSetResult(cs configstore.ChangeSet, err error) int {
	if err != nil {
		return inv.fail(err)
	}
	return inv.print(func(w io.Writer) {
		fmt.Fprintf(w, "change set %s by %s at %s: %s\n", cs.ID, cs.Author, formatTime(cs.Time), oneLine(cs.Reason))
		if cs.RevertOf != "" {
			fmt.Fprintf(w, "  reverts %s\n", cs.RevertOf)
		}
		if cs.RevertedBy != "" {
			fmt.Fprintf(w, "  reverted by %s\n", cs.RevertedBy)
		}
		for _, e := range cs.Entries {
			what := "service " + e.Service
			if e.Service == "" {
				what = "deployment " + e.Deployment
			}
			fmt.Fprintf(w, "  %s: version %d → %d: %s\n", what, e.From, e.To, e.Summary)
		}
	})
}

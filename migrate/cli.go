package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Usage is the command line summary, shown by "help" and on usage errors.
const Usage = `usage: switchback migrate COMMAND [flags]

Commands:
  create NAME [--phase expand|contract]   write a new migration file
  up [--to VERSION]                       apply pending migrations
  down [--to VERSION]                     roll back one migration, or down to VERSION
  status                                  list migrations and whether they are applied
  verify                                  prove every down restores the schema (scratch database)
  lint [--usage LOG]... [--now TIME]      check destructive statements and 30-day non-use, offline
  snapshot list                           list data snapshots
  snapshot restore VERSION                put back the rows snapshotted before VERSION's up
  resolve VERSION                         clear a half-applied record after repairing by hand

Flags:
  --db URL            sqlite:PATH (default sqlite:./app.db), postgres://USER@HOST:PORT/DB,
                      mysql://USER@HOST:PORT/DB
  --dir DIR           migrations directory (default ./migrations)
  --json              machine-readable output
  --lock-timeout D    how long to wait for another migrator (default 5m)
  --now TIME          the current time, RFC 3339 (lint window, create numbering)

Flags may come before or after the command and its names.

Examples:
  switchback migrate create add_email_verified --phase expand
  switchback migrate up --db postgres://postgres@127.0.0.1:5432/app
  switchback migrate --db sqlite:./app.db down --to 3
`

// Exit codes of Main.
const (
	ExitOK      = 0
	ExitFailure = 1 // a migration, verify, lint or database error
	ExitUsage   = 2 // bad command line; nothing was changed
)

type cli struct {
	stdout, stderr io.Writer

	db          string
	dir         string
	json        bool
	lockTimeout time.Duration
	now         time.Time
	to          int64
	toSet       bool
	phase       Phase
	usage       []string
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Main runs the migrate command line: args are what follows
// "switchback migrate". It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, Usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	// Flags may come before the command too ("migrate --db URL up"): the
	// command is the first name on the line.
	name := "migrate"
	if !strings.HasPrefix(args[0], "-") {
		name = args[0]
	}
	pos, err := c.parse(name, args)
	if err != nil {
		return c.fail(err)
	}
	if len(pos) == 0 {
		return c.fail(usagef("no command; accepted: create, up, down, status, verify, lint, snapshot, resolve"))
	}
	cmd := pos[0]
	pos = pos[1:]
	var out any
	switch cmd {
	case "create":
		out, err = c.create(pos)
	case "up", "down":
		out, err = c.upDown(ctx, cmd, pos)
	case "status":
		out, err = c.status(ctx, pos)
	case "verify":
		out, err = c.verify(ctx, pos)
	case "lint":
		out, err = c.lint(pos)
	case "snapshot":
		out, err = c.snapshot(ctx, pos)
	case "resolve":
		out, err = c.resolve(ctx, pos)
	default:
		err = usagef("unknown command %q; accepted: create, up, down, status, verify, lint, snapshot, resolve", cmd)
	}
	if c.json && out != nil {
		c.writeJSON(out, err)
		if err != nil {
			return c.code(err)
		}
		return ExitOK
	}
	if err != nil {
		return c.fail(err)
	}
	return ExitOK
}

func (c *cli) code(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

func (c *cli) fail(err error) int {
	if c.json {
		c.writeJSON(struct{}{}, err)
	}
	fmt.Fprintf(c.stderr, "error: %v\n", err)
	if c.code(err) == ExitUsage {
		fmt.Fprintln(c.stderr, "run `switchback migrate help` for usage")
	}
	return c.code(err)
}

func (c *cli) writeJSON(v any, err error) {
	b, merr := json.Marshal(v)
	if merr != nil {
		fmt.Fprintf(c.stderr, "error: encode json: %v\n", merr)
		return
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		// A list: wrap it.
		m = map[string]any{"items": json.RawMessage(b)}
	}
	m["ok"] = err == nil
	if err != nil {
		m["error"] = err.Error()
	}
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(m)
}

// parse reads flags, which may come before or after positional arguments.
func (c *cli) parse(cmd string, args []string) ([]string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.db, "db", "sqlite:./app.db", "")
	fs.StringVar(&c.dir, "dir", "./migrations", "")
	fs.BoolVar(&c.json, "json", false, "")
	lockTimeout := fs.String("lock-timeout", "5m", "")
	now := fs.String("now", "", "")
	to := fs.String("to", "", "")
	phase := fs.String("phase", string(PhaseExpand), "")
	fs.Func("usage", "", func(s string) error { c.usage = append(c.usage, s); return nil })
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", cmd, strings.TrimPrefix(err.Error(), "flag provided but not defined: "))
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	var err error
	if c.lockTimeout, err = time.ParseDuration(*lockTimeout); err != nil || c.lockTimeout < time.Second {
		return nil, usagef("--lock-timeout %q: accepted: a duration of 1s or more, such as 30s or 5m", *lockTimeout)
	}
	c.now = time.Now()
	if *now != "" {
		if c.now, err = time.Parse(time.RFC3339, *now); err != nil {
			return nil, usagef("--now %q: accepted: an RFC 3339 time such as 2026-03-01T12:00:00Z", *now)
		}
	}
	if *to != "" {
		if c.to, err = strconv.ParseInt(*to, 10, 64); err != nil || c.to < 0 {
			return nil, usagef("--to %q: accepted: a migration version, a whole number of 0 or more", *to)
		}
		c.toSet = true
	}
	if c.phase, err = ParsePhase(*phase); err != nil {
		return nil, usageError{err.Error()}
	}
	if _, err := ParseTarget(c.db); err != nil {
		return nil, usageError{err.Error()}
	}
	return pos, nil
}

func (c *cli) args(cmd string, pos []string, want ...string) error {
	if len(pos) != len(want) {
		if len(want) == 0 {
			return usagef("%s takes no arguments, got %q", cmd, strings.Join(pos, " "))
		}
		return usagef("%s needs %s, got %d argument(s) %q", cmd, strings.Join(want, " "), len(pos), strings.Join(pos, " "))
	}
	return nil
}

func (c *cli) version(arg, what string) (int64, error) {
	v, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || v < 1 {
		return 0, usagef("%s %q: accepted: a migration version, a whole number of 1 or more", what, arg)
	}
	return v, nil
}

func (c *cli) open(ctx context.Context) (*Migrator, error) {
	if _, err := os.Stat(c.dir); err != nil {
		return nil, usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	m, err := Open(ctx, c.db, os.DirFS(c.dir), WithLockTimeout(c.lockTimeout), WithNow(func() time.Time { return time.Now() }))
	if errors.Is(err, ErrNoMigrations) {
		return nil, usagef("--dir %q: %v", c.dir, err)
	}
	return m, err
}

func (c *cli) create(pos []string) (any, error) {
	if err := c.args("create", pos, "NAME"); err != nil {
		return nil, err
	}
	path, err := Create(c.dir, pos[0], c.phase, c.now)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "created %s (%s)\n", path, c.phase)
	}
	return map[string]any{"path": path, "phase": c.phase}, nil
}

func (c *cli) upDown(ctx context.Context, cmd string, pos []string) (any, error) {
	if err := c.args(cmd, pos); err != nil {
		return nil, err
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if c.toSet {
		zero := "roll back everything"
		if cmd == "up" {
			zero = "" // up without --to applies everything
		}
		if err := m.checkVersion("--to", c.to, zero); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	var rep *Report
	switch {
	case cmd == "up":
		rep, err = m.Up(ctx, c.to)
	case c.toSet:
		rep, err = m.Down(ctx, c.to)
	default:
		rep, err = m.Down(ctx, -1)
	}
	if !c.json && rep != nil {
		c.printReport(rep, err)
	}
	if rep == nil {
		return nil, err
	}
	return rep, err
}

func (c *cli) printReport(rep *Report, err error) {
	for _, in := range rep.Cleared {
		fmt.Fprintf(c.stdout, "note: %s (version %d) was interrupted during %s at %s and left nothing behind; cleared\n",
			in.File, in.Version, in.Direction, in.StartedAt.Format(time.RFC3339))
	}
	for _, a := range rep.Applied {
		line := fmt.Sprintf("OK    %-4s %s (%s)", rep.Direction, a.File, a.Duration.Round(time.Millisecond))
		for _, s := range a.Snapshots {
			line += fmt.Sprintf("; snapshot %s: %d rows", s.Table, s.Rows)
			if s.Kept {
				line += " (kept from " + s.TakenAt.Format(time.RFC3339) + ", before an earlier attempt)"
			}
		}
		fmt.Fprintln(c.stdout, line)
	}
	if f := rep.Failed; f != nil {
		fmt.Fprintf(c.stdout, "FAIL  %-4s %s: %s\n", rep.Direction, f.File, f.Error)
		switch {
		case f.RolledBack:
			fmt.Fprintf(c.stdout, "      rolled back: nothing of %s remains\n", f.File)
		case len(f.Left) == 0:
			fmt.Fprintf(c.stdout, "      no schema change was left behind\n")
		default:
			fmt.Fprintf(c.stdout, "      NOT rolled back (no transactional DDL); changes left behind:\n")
			for _, l := range f.Left {
				fmt.Fprintf(c.stdout, "        %s\n", l)
			}
			fmt.Fprintf(c.stdout, "      the next run refuses to continue until the schema is repaired and `switchback migrate resolve %d` is run\n", f.Version)
		}
	}
	if len(rep.Applied) == 0 && rep.Failed == nil && err == nil {
		fmt.Fprintln(c.stdout, "nothing to do")
	}
	fmt.Fprintf(c.stdout, "database version: %d\n", rep.Version)
}

func (c *cli) status(ctx context.Context, pos []string) (any, error) {
	if err := c.args("status", pos); err != nil {
		return nil, err
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	if !c.json {
		w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VERSION\tSTATE\tPHASE\tAPPLIED AT\tFILE")
		for _, s := range st {
			at := "-"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			file := s.File
			if len(s.Snapshot) > 0 {
				file += " (snapshot " + strings.Join(s.Snapshot, ", ") + ")"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.Version, s.State, s.Phase, at, file)
		}
		w.Flush()
	}
	return map[string]any{"migrations": st}, nil
}

func (c *cli) verify(ctx context.Context, pos []string) (any, error) {
	if err := c.args("verify", pos); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.dir); err != nil {
		return nil, usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	rep, err := Verify(ctx, c.db, os.DirFS(c.dir))
	if errors.Is(err, ErrNoMigrations) {
		return nil, usagef("--dir %q: %v", c.dir, err)
	}
	if rep == nil {
		return nil, err
	}
	if !c.json {
		failed := map[int64]VerifyFailure{}
		for _, f := range rep.Failures {
			failed[f.Version] = f
		}
		for _, r := range rep.Checked {
			if f, ok := failed[r.Version]; ok {
				fmt.Fprintf(c.stdout, "FAIL  %s\n", f)
				continue
			}
			fmt.Fprintf(c.stdout, "ok    %s\n", r.File)
		}
		fmt.Fprintf(c.stdout, "verify: %d of %d migrations round-trip on a scratch %s database (%s)\n",
			len(rep.Checked)-len(rep.Failures), len(rep.Checked), rep.Dialect, rep.Duration.Round(time.Millisecond))
	}
	return rep, err
}

func (c *cli) lint(pos []string) (any, error) {
	if err := c.args("lint", pos); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.dir); err != nil {
		return nil, usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	opts := []LintOption{WithLintNow(func() time.Time { return c.now })}
	for _, path := range c.usage {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--usage %q: %v; accepted: a readable query log file", path, errors.Unwrap(err))
		}
		defer f.Close()
		opts = append(opts, WithUsage(path, f))
	}
	rep, err := Lint(os.DirFS(c.dir), opts...)
	if errors.Is(err, ErrNoMigrations) {
		return nil, usagef("--dir %q: %v", c.dir, err)
	}
	if rep == nil {
		return nil, err
	}
	if !c.json {
		for _, f := range rep.Findings {
			fmt.Fprintln(c.stdout, f)
		}
		if u := rep.Usage; u != nil {
			fmt.Fprintf(c.stdout, "usage logs: %d entries from %s to %s\n", u.Entries, u.First.Format(time.RFC3339), u.Last.Format(time.RFC3339))
		}
		fmt.Fprintf(c.stdout, "lint: %d finding(s) in %d migrations\n", len(rep.Findings), rep.Migrations)
	}
	return rep, err
}

func (c *cli) snapshot(ctx context.Context, pos []string) (any, error) {
	if len(pos) == 0 {
		return nil, usagef("snapshot needs a subcommand; accepted: list, restore VERSION")
	}
	switch pos[0] {
	case "list":
		if err := c.args("snapshot list", pos[1:]); err != nil {
			return nil, err
		}
	case "restore":
		if err := c.args("snapshot restore", pos[1:], "VERSION"); err != nil {
			return nil, err
		}
	default:
		return nil, usagef("snapshot %q: accepted: list, restore VERSION", pos[0])
	}
	var v int64
	if pos[0] == "restore" {
		var err error
		if v, err = c.version(pos[1], "snapshot restore"); err != nil {
			return nil, err
		}
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if pos[0] == "list" {
		snaps, err := m.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		if !c.json {
			printSnapshots(c.stdout, snaps)
		}
		return map[string]any{"snapshots": snaps}, nil
	}
	began := time.Now()
	restored, err := m.RestoreSnapshot(ctx, v)
	if err != nil {
		return nil, err
	}
	if !c.json {
		for _, r := range restored {
			fmt.Fprintf(c.stdout, "restored %s: %d rows\n", r.Table, r.Rows)
		}
		fmt.Fprintf(c.stdout, "snapshot %d restored in %s\n", v, time.Since(began).Round(time.Millisecond))
	}
	return map[string]any{"version": v, "restored": restored}, nil
}

// printSnapshots lists snaps as a table. NEXT UP says what the next up of
// the version does with the copy (see takeSnapshot).
func printSnapshots(out io.Writer, snaps []Snapshot) {
	if len(snaps) == 0 {
		fmt.Fprintln(out, "no snapshots")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tTABLE\tROWS\tTAKEN AT\tNEXT UP\tCOPY")
	for _, s := range snaps {
		next := "keeps it"
		if !s.RevertedAt.IsZero() {
			next = "replaces it (down at " + s.RevertedAt.Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\n", s.Version, s.Table, s.Rows, s.TakenAt.Format(time.RFC3339), next, s.Copy)
	}
	w.Flush()
	fmt.Fprintln(out, "an up replaces a version's snapshot only after a down of that version; a retried up keeps the copy from before the failed one")
}

func (c *cli) resolve(ctx context.Context, pos []string) (any, error) {
	if err := c.args("resolve", pos, "VERSION"); err != nil {
		return nil, err
	}
	v, err := c.version(pos[0], "resolve")
	if err != nil {
		return nil, err
	}
	m, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.Resolve(ctx, v); err != nil {
		return nil, err
	}
	if !c.json {
		fmt.Fprintf(c.stdout, "resolved %d: the next run continues from the recorded version\n", v)
	}
	return map[string]any{"resolved": v}, nil
}

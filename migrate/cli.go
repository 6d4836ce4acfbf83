package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/cmdline"
)

// Usage is the command line summary, shown by "help" and on usage errors.
const Usage = `usage: switchback migrate COMMAND [flags]

Commands:
  create NAME [--phase expand|contract]   write a new migration file
  up [--to VERSION]                       apply pending migrations
  down [--to VERSION]                     roll back one migration, or down to VERSION
  status                                  list migrations and whether they are applied (read-only)
  verify                                  prove every down restores the schema (scratch database)
  lint [--usage LOG]... [--now TIME]      check destructive statements and 30-day non-use, offline
  snapshot list                           list data snapshots
  snapshot restore VERSION                put back the rows snapshotted before VERSION's up
  resolve VERSION                         clear a half-applied record after repairing by hand

Flags:
  --db URL            sqlite:PATH (default sqlite:./app.db), postgres://USER@HOST:PORT/DB,
                      mysql://USER@HOST:PORT/DB
  --database NAME     instead of --db: the gateway's 'database NAME DSN { migrations DIR }'
                      line, its placeholders ({env.MAIN_DB}) read as the gateway reads them;
                      its migrations directory is the default --dir
  --config FILE       the Caddyfile --database reads (default ./Caddyfile)
  --dir DIR           migrations directory (default ./migrations)
  --json              machine-readable output
  --allow-irreversible
                      up and down run a migration without a Down section (refused
                      otherwise, naming the file); the report marks it irreversible
  --lock-timeout D    how long to wait for another migrator (default 5m)
  --now TIME          the current time, RFC 3339 (lint window, create numbering)

Flags may come before or after the command and its names.

Examples:
  switchback migrate create add_email_verified --phase expand
  switchback migrate up --db postgres://postgres@127.0.0.1:5432/app
  switchback migrate --db sqlite:./app.db down --to 3
  switchback migrate --database main --config /etc/caddy/Caddyfile status
`

// DatabaseResolver finds a gateway's named database in its configuration
// file: the address and the migrations directory ("" when none is
// configured) that `--database NAME --config FILE` stand for. Its errors
// must not show a password.
type DatabaseResolver func(config, name string) (dbURL, dir string, err error)

type cli struct {
	stdout, stderr io.Writer

	db          string
	dir         string
	resolveDB   DatabaseResolver
	json        bool
	lockTimeout time.Duration
	now         time.Time
	to          int64
	toSet       bool
	phase       Phase
	usage       []string

	allowIrreversible bool
}

// Main runs the migrate command line: args are what follows
// "switchback migrate". It returns the process exit code, one of
// cmdline.ExitOK, cmdline.ExitError (a migration, verify, lint or database
// error) and cmdline.ExitUsage (a bad command line; nothing was changed).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return MainWith(ctx, args, stdout, stderr, nil)
}

// MainWith is Main with --database: resolve reads the database's address
// and migrations directory from the gateway's configuration. With a nil
// resolve, --database is refused.
func MainWith(ctx context.Context, args []string, stdout, stderr io.Writer, resolve DatabaseResolver) int {
	c := &cli{stdout: stdout, stderr: stderr, resolveDB: resolve}
	if len(args) == 0 || cmdline.IsHelp(args[0]) {
		fmt.Fprint(stdout, Usage)
		if len(args) == 0 {
			return cmdline.ExitUsage
		}
		return cmdline.ExitOK
	}
	// Flags may come before the command too ("migrate --db URL up"): the
	// command is the first name on the line.
	pos, err := c.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, Usage)
		return cmdline.ExitOK
	}
	if err != nil {
		return c.fail(err)
	}
	if len(pos) == 0 {
		return c.fail(cmdline.Usagef("no command; accepted: create, up, down, status, verify, lint, snapshot, resolve"))
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
		err = cmdline.Usagef("unknown command %q; accepted: create, up, down, status, verify, lint, snapshot, resolve", cmd)
	}
	if c.json && out != nil {
		c.writeJSON(out, err)
		return cmdline.Code(err)
	}
	if err != nil {
		return c.fail(err)
	}
	return cmdline.ExitOK
}

func (c *cli) fail(err error) int {
	if c.json {
		c.writeJSON(struct{}{}, err)
	}
	fmt.Fprintf(c.stderr, "error: %v\n", err)
	code := cmdline.Code(err)
	if code == cmdline.ExitUsage {
		fmt.Fprintln(c.stderr, "run `switchback migrate help` for usage")
	}
	return code
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

// flagCommands lists the commands an option that is not common to all
// applies to; given to another command it would be silently ignored, so
// it is refused.
var flagCommands = map[string][]string{
	"to":                 {"up", "down"},
	"allow-irreversible": {"up", "down"},
	"phase":              {"create"},
	"now":                {"create", "lint"},
	"usage":              {"lint"},
}

// parse reads options, which may come before, between or after positional
// arguments.
func (c *cli) parse(args []string) ([]string, error) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.db, "db", "sqlite:./app.db", "")
	fs.StringVar(&c.dir, "dir", "./migrations", "")
	database := fs.String("database", "", "")
	config := fs.String("config", "./Caddyfile", "")
	fs.BoolVar(&c.json, "json", false, "")
	fs.BoolVar(&c.allowIrreversible, "allow-irreversible", false, "")
	lockTimeout := fs.String("lock-timeout", "5m", "")
	now := fs.String("now", "", "")
	to := fs.String("to", "", "")
	phase := fs.String("phase", string(PhaseExpand), "")
	fs.Func("usage", "", func(s string) error { c.usage = append(c.usage, s); return nil })
	pos, err := cmdline.Parse(fs, args)
	cmd := "migrate"
	if len(pos) > 0 {
		cmd = pos[0]
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	set := map[string]bool{}
	var misplaced error
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if cmds, ok := flagCommands[f.Name]; ok && !slices.Contains(cmds, cmd) && misplaced == nil {
			misplaced = cmdline.Usagef("%s: --%s applies to %s only", cmd, f.Name, strings.Join(cmds, " and "))
		}
	})
	if misplaced != nil {
		return nil, misplaced
	}
	if c.lockTimeout, err = time.ParseDuration(*lockTimeout); err != nil || c.lockTimeout < time.Second {
		return nil, cmdline.Usagef("--lock-timeout %q: accepted: a duration of 1s or more, such as 30s or 5m", *lockTimeout)
	}
	c.now = time.Now()
	if *now != "" {
		if c.now, err = time.Parse(time.RFC3339, *now); err != nil {
			return nil, cmdline.Usagef("--now %q: accepted: an RFC 3339 time such as 2026-03-01T12:00:00Z", *now)
		}
	}
	if *to != "" {
		if c.to, err = strconv.ParseInt(*to, 10, 64); err != nil || c.to < 0 {
			return nil, cmdline.Usagef("--to %q: accepted: a migration version, a whole number of 0 or more", *to)
		}
		c.toSet = true
	}
	if c.phase, err = ParsePhase(*phase); err != nil {
		return nil, &cmdline.UsageError{Msg: err.Error()}
	}
	if set["database"] || set["config"] {
		if err := c.useDatabase(*database, *config, set); err != nil {
			return nil, err
		}
	}
	if _, err := ParseTarget(c.db); err != nil {
		if set["database"] {
			return nil, cmdline.Usagef("--database %s (in %s): %v", *database, *config, err)
		}
		return nil, &cmdline.UsageError{Msg: err.Error()}
	}
	return pos, nil
}

// useDatabase sets --db, and --dir unless given, from the gateway's
// database line name in the Caddyfile config.
func (c *cli) useDatabase(name, config string, set map[string]bool) error {
	switch {
	case !set["database"]:
		return cmdline.Usagef("--config %q: applies with --database only", config)
	case set["db"]:
		return cmdline.Usagef("--db and --database %s: give one; --database reads the address from the gateway's Caddyfile, --db gives it", name)
	case c.resolveDB == nil:
		return cmdline.Usagef("--database %s: this command cannot read a gateway's Caddyfile; give --db URL", name)
	}
	dbURL, dir, err := c.resolveDB(config, name)
	if err != nil {
		return &cmdline.UsageError{Msg: err.Error(), Err: err}
	}
	c.db = dbURL
	if dir == "" {
		return nil
	}
	if set["dir"] && filepath.Clean(c.dir) != filepath.Clean(dir) {
		return cmdline.Usagef("--dir %q: database %s's migrations directory in %s is %q; give --dir only for a database without one", c.dir, name, config, dir)
	}
	c.dir = dir
	return nil
}

func (c *cli) args(cmd string, pos []string, want ...string) error {
	if len(pos) != len(want) {
		if len(want) == 0 {
			return cmdline.Usagef("%s takes no arguments, got %q", cmd, strings.Join(pos, " "))
		}
		return cmdline.Usagef("%s needs %s, got %d argument(s) %q", cmd, strings.Join(want, " "), len(pos), strings.Join(pos, " "))
	}
	return nil
}

func (c *cli) version(arg, what string) (int64, error) {
	v, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || v < 1 {
		return 0, cmdline.Usagef("%s %q: accepted: a migration version, a whole number of 1 or more", what, arg)
	}
	return v, nil
}

// open opens the migrator for a command; extra adds options such as
// WithReadOnly.
func (c *cli) open(ctx context.Context, extra ...Option) (*Migrator, error) {
	if _, err := os.Stat(c.dir); err != nil {
		return nil, cmdline.Usagef("--dir %q: %v; accepted: a directory of NUMBER_name.sql migrations", c.dir, errors.Unwrap(err))
	}
	opts := []Option{WithLockTimeout(c.lockTimeout), WithNow(time.Now)}
	if c.allowIrreversible {
		opts = append(opts, WithAllowIrreversible())
	}
	m, err := Open(ctx, c.db, os.DirFS(c.dir), append(opts, extra...)...)
	switch {
	case errors.Is(err, ErrNoMigrations):
		return nil, cmdline.Usagef("--dir %q: %v", c.dir, err)
	case errors.Is(err, ErrNoDatabase):
		return nil, &cmdline.UsageError{Msg: err.Error(), Err: err}
	}
	return m, err
}

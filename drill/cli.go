package drill

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/migrate"
)

// Usage is `switchback drill`'s help.
const Usage = `usage: switchback drill PATTERN|all [flags]
       switchback drill history [--pattern P] [--limit N] [--json] [--admin URL]

Exercise a rollback path end to end: break it, roll back (by the runbook's
command, or by the gateway's own guard), measure from the client's side
how long clients took to get good answers again, and prove the state after
equals the state before. PATTERN is one of: %s.

With no target the drill builds a sandbox on 127.0.0.1 (embedded etcd,
the example blue and green backends, a switchback gateway, a SQLite
database) and tears it down afterwards. Against staging, name the admin
API, the deployment and the URL clients reach it at; the deployment must be
marked "environment staging" in its document.

Flags:
  --trigger manual|guard|both  who rolls back: the documented command (manual),
                               the gateway's guard, or each in turn (default both)
  --json                       one JSON object per drill, in a list
  --report DIR                 write DIR/report.md and DIR/report.html (timeline)
  --flag-after D               flag a drill whose trigger to recovered is longer (default 90s)
  --timeout D                  give up on a recovery after D (default flag-after + 30s)
  --rate N                     client requests per second during a drill (default 100)
  --admin URL                  staging: the admin API (token: --token or $SWITCHBACK_TOKEN)
  --deployment NAME            staging: the deployment to drill
  --traffic URL                staging: the gateway's URL for that deployment
  --database URL|NAME          staging: the migration pattern's database (a URL), or
                               the release pattern's (NAME, a 'database NAME DSN
                               { migrations DIR }' line of the gateway whose DIR holds
                               the drill's release migrations)
  --config FILE                staging: the gateway's Caddyfile, which
                               'switchback migrate --database NAME' reads (default ./Caddyfile)
  --service NAME               the config pattern's service (default switchback-drill-DEPLOYMENT)
  --i-know-this-is-production  drill a deployment not marked staging
  --no-record                  do not store the results in the target's history

Exit status: 0 when every drill passed and none was flagged, 1 otherwise,
2 for a wrong command line.

Examples:
  switchback drill all
  switchback drill flip --trigger guard --json
  switchback drill all --admin https://sb.staging:9180 --deployment checkout \
      --traffic https://checkout.staging --report ./drill-report
  switchback drill release --admin https://sb.staging:9180 --deployment checkout \
      --traffic https://checkout.staging --database drill --config /etc/caddy/Caddyfile
  switchback drill history --admin https://sb.staging:9180 --pattern flip
`

// Main runs `switchback drill` with args (after "drill"); binary is the
// switchback binary (os.Executable()), which runs the sandbox's gateway
// and the manual trigger's commands. It returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, binary string) int {
	return MainWith(ctx, args, stdout, stderr, getenv, binary, nil)
}

// MainWith is Main with resolve, which reads a named database's address
// from the gateway's Caddyfile for a staging release drill (`--database
// NAME --config FILE`); with a nil resolve that drill is not applicable.
func MainWith(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, binary string, resolve migrate.DatabaseResolver) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if len(args) > 0 && cmdline.IsHelp(args[0]) {
		fmt.Fprintf(stdout, Usage, strings.Join(append(Names(), "all"), ", "))
		return cmdline.ExitOK
	}
	err := runCLI(ctx, args, stdout, stderr, getenv, binary, resolve)
	var ue *cmdline.UsageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, Usage, strings.Join(append(Names(), "all"), ", "))
		return cmdline.ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "switchback drill: %v\n(switchback drill --help for usage)\n", err)
	case errors.Is(err, errNotOK):
	case err != nil:
		fmt.Fprintf(stderr, "switchback drill: %v\n", err)
	}
	return cmdline.Code(err)
}

// errNotOK: the drills ran and one failed or was flagged; the output said
// which.
var errNotOK = errors.New("a drill failed or was flagged")

type cliFlags struct {
	trigger, report, adminURL, token, deployment, traffic, database, config, service, pattern string
	json, production, noRecord                                                                bool
	flagAfter, timeout                                                                        time.Duration
	rate, limit                                                                               int
}

func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, binary string, resolve migrate.DatabaseResolver) error {
	var f cliFlags
	fs := flag.NewFlagSet("switchback drill", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.trigger, "trigger", "both", "")
	fs.BoolVar(&f.json, "json", false, "")
	fs.StringVar(&f.report, "report", "", "")
	fs.DurationVar(&f.flagAfter, "flag-after", DefaultFlagAfter, "")
	fs.DurationVar(&f.timeout, "timeout", 0, "")
	fs.IntVar(&f.rate, "rate", 100, "")
	fs.StringVar(&f.adminURL, "admin", "", "")
	fs.StringVar(&f.token, "token", getenv("SWITCHBACK_TOKEN"), "")
	fs.StringVar(&f.deployment, "deployment", "", "")
	fs.StringVar(&f.traffic, "traffic", "", "")
	fs.StringVar(&f.database, "database", "", "")
	fs.StringVar(&f.config, "config", "./Caddyfile", "")
	fs.StringVar(&f.service, "service", "", "")
	fs.BoolVar(&f.production, "i-know-this-is-production", false, "")
	fs.BoolVar(&f.noRecord, "no-record", false, "")
	fs.StringVar(&f.pattern, "pattern", "", "")
	fs.IntVar(&f.limit, "limit", 20, "")
	pos, err := cmdline.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cmdline.Usagef("want one pattern (%s) or history, got %q", strings.Join(append(Names(), "all"), ", "), strings.Join(pos, " "))
	}
	if pos[0] == "history" {
		return history(ctx, f, stdout, getenv)
	}
	patterns, err := selectPatterns(pos[0])
	if err != nil {
		return err
	}
	triggers, err := selectTriggers(f.trigger)
	if err != nil {
		return err
	}
	if f.flagAfter <= 0 {
		return cmdline.Usagef("--flag-after %s: want a positive duration such as 90s", f.flagAfter)
	}
	if f.rate < 1 || f.rate > 1000 {
		return cmdline.Usagef("--rate %d: want 1 to 1000 requests per second", f.rate)
	}
	o := Options{FlagAfter: f.flagAfter, Timeout: f.timeout}

	var (
		envFor   func(Pattern, Trigger) (*Env, error)
		recorder *admin.Client
	)
	staging := f.adminURL != "" || f.deployment != "" || f.traffic != ""
	if staging {
		env, err := stagingEnv(ctx, f, binary, resolve)
		if err != nil {
			return err
		}
		envFor = func(Pattern, Trigger) (*Env, error) { e := *env; return &e, nil }
		if !f.noRecord {
			recorder = env.Admin
		}
	} else {
		if f.database != "" {
			return cmdline.Usagef("--database %s: only with --admin, --deployment and --traffic (the sandbox has its own)", f.database)
		}
		configSet := false
		fs.Visit(func(fl *flag.Flag) { configSet = configSet || fl.Name == "config" })
		if configSet {
			return cmdline.Usagef("--config %s: only with --admin, --deployment and --traffic (the sandbox has its own)", f.config)
		}
		fmt.Fprintln(stderr, "starting the sandbox (embedded etcd, blue and green backends, a switchback gateway, SQLite) on 127.0.0.1")
		sb, err := StartSandbox(ctx, binary)
		if err != nil {
			return err
		}
		defer sb.Close()
		envFor = func(_ Pattern, t Trigger) (*Env, error) {
			e, err := sb.Env(t)
			if err == nil {
				e.Rate, e.Service = f.rate, f.service
			}
			return e, err
		}
		if !f.noRecord {
			// The sandbox's own history: gone with the sandbox, but the
			// same write path staging's drills take.
			e, _ := sb.Env(Manual)
			recorder = e.Admin
		}
	}

	results := RunAll(ctx, envFor, patterns, triggers, o)
	if recorder != nil {
		for _, r := range results {
			if _, err := recorder.RecordDrill(ctx, r); err != nil {
				fmt.Fprintf(stderr, "switchback drill: recording the %s/%s result: %v\n", r.Pattern, r.Trigger, err)
			}
		}
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		WriteTable(stdout, results)
	}
	if f.report != "" {
		if err := WriteReport(f.report, results, o.withDefaults().FlagAfter); err != nil {
			return err
		}
		if !f.json {
			fmt.Fprintf(stdout, "\nreport: %s/report.md, %s/report.html\n", f.report, f.report)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for _, r := range results {
		if !r.OK() {
			return errNotOK
		}
	}
	return nil
}

func selectPatterns(name string) ([]Pattern, error) {
	if name == "all" {
		return Patterns(), nil
	}
	if p := Lookup(name); p != nil {
		return []Pattern{p}, nil
	}
	return nil, cmdline.Usagef("pattern %q: want one of %s", name, strings.Join(append(Names(), "all"), ", "))
}

func selectTriggers(s string) ([]Trigger, error) {
	switch s {
	case "both":
		return []Trigger{Manual, Guard}, nil
	case string(Manual), string(Guard):
		return []Trigger{Trigger(s)}, nil
	}
	return nil, cmdline.Usagef("--trigger %q: want manual, guard or both", s)
}

// stagingEnv checks the staging flags and the deployment's mark.
func stagingEnv(ctx context.Context, f cliFlags, binary string, resolve migrate.DatabaseResolver) (*Env, error) {
	for _, req := range []struct{ name, v string }{{"--admin", f.adminURL}, {"--deployment", f.deployment}, {"--traffic", f.traffic}} {
		if req.v == "" {
			return nil, cmdline.Usagef("%s is missing: a staging drill needs --admin URL, --deployment NAME and --traffic URL", req.name)
		}
	}
	c, err := admin.NewClient(f.adminURL, f.token)
	if err != nil {
		return nil, cmdline.Usagef("--admin: %v", err)
	}
	c.HTTP = &http.Client{Timeout: 10 * time.Second}
	if _, err := admin.NewClient(f.traffic, ""); err != nil {
		return nil, cmdline.Usagef("--traffic %q: want http://host:port or https://host:port", f.traffic)
	}
	d, err := c.Status(ctx, f.deployment)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", f.deployment, err)
	}
	if d.Environment != "staging" && !f.production {
		env := d.Environment
		if env == "" {
			env = "production (no environment in its document)"
		}
		return nil, fmt.Errorf("deployment %s is marked %s, not staging: a drill breaks it on purpose. Mark it (Caddyfile: environment staging; or a change set patching {\"environment\": \"staging\"}) or pass --i-know-this-is-production", f.deployment, env)
	}
	env := &Env{
		Target: f.adminURL, Admin: c, AdminURL: f.adminURL, Token: f.token, Deployment: f.deployment,
		Traffic: f.traffic, Service: f.service, Rate: f.rate,
		HTTP: &http.Client{Timeout: 5 * time.Second},
		CLI:  Exec{Path: binary, AdminURL: f.adminURL, Token: f.token},
	}
	if isDatabaseName(f.database) {
		setReleaseDatabase(env, f.database, f.config, resolve)
	} else {
		env.Database = f.database
	}
	return env, nil
}

// isDatabaseName tells a gateway's database name (the release pattern's
// --database) from an address (the migration pattern's): an address has
// a scheme, a path or a user.
func isDatabaseName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ":/@") && gateway.ValidName(s)
}

// setReleaseDatabase points env's release pattern at the gateway's
// database name, whose address the gateway's Caddyfile config holds; what
// stops it is kept for the pattern to report as not applicable.
func setReleaseDatabase(env *Env, name, config string, resolve migrate.DatabaseResolver) {
	env.ReleaseDatabase, env.Caddyfile = name, config
	if resolve == nil {
		env.releaseProblem = "this program cannot read a gateway's Caddyfile to find database " + name + "'s address; run the switchback binary"
		return
	}
	dsn, _, err := resolve(config, name)
	if err != nil {
		env.releaseProblem = fmt.Sprintf("database %s in --config %s: %v", name, config, err)
		return
	}
	env.ReleaseDatabaseURL = dsn
}

func history(ctx context.Context, f cliFlags, stdout io.Writer, getenv func(string) string) error {
	u := f.adminURL
	if u == "" {
		u = getenv("SWITCHBACK_ADMIN")
	}
	if u == "" {
		u = admin.DefaultAdminURL
	}
	c, err := admin.NewClient(u, f.token)
	if err != nil {
		return cmdline.Usagef("--admin: %v", err)
	}
	if f.limit < 1 || f.limit > 1000 {
		return cmdline.Usagef("--limit %d: want 1 to 1000", f.limit)
	}
	recs, err := c.Drills(ctx, f.pattern, f.limit)
	if err != nil {
		return err
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	}
	rs := make([]Result, len(recs))
	for i, r := range recs {
		rs[i] = r.Result
	}
	WriteHistory(stdout, rs)
	return nil
}

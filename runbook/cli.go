package runbook

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/migrate"
)

// Usage is `switchback runbook`'s help.
const Usage = `usage: switchback runbook DEPLOYMENT [--database NAME [--config FILE] | --db URL --dir DIR] [--admin URL] [--token TOKEN]

Prints a Markdown runbook for DEPLOYMENT, generated from its live
configuration: for each rollback pattern (flip, flag, config, migration,
release) how to tell it is needed, the exact commands and their curl
equivalents, how to verify, and the last drill's result.

  --admin URL   the admin API ($SWITCHBACK_ADMIN, default ` + admin.DefaultAdminURL + `)
  --token T     its bearer token ($SWITCHBACK_TOKEN)
  --database NAME  the gateway's database whose migrations the runbook covers (read
                   only): its 'database NAME DSN { migrations DIR }' line, so the
                   commands print 'switchback migrate --database NAME' and no address;
                   without a database, the runbook lists the gateway's (GET /api/v1/databases)
  --config FILE    the gateway's Caddyfile --database reads (default ./Caddyfile)
  --db URL         instead of --database: the database's address
  --dir DIR        its migrations directory (default ./migrations)

Examples:
  switchback runbook checkout --database main --config /etc/caddy/Caddyfile > RUNBOOK.md
  switchback runbook checkout --db postgres://app@db:5432/checkout --dir migrations > RUNBOOK.md
`

// Main runs `switchback runbook`: args follow the command's name. It
// returns the exit status: cmdline.ExitOK, ExitError when the admin API
// or the deployment could not be read, ExitUsage for a bad command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	return MainWith(ctx, args, stdout, stderr, env, nil)
}

// MainWith is Main with --database: resolve reads the database's address
// and migrations directory from the gateway's Caddyfile
// (caddymodule.ResolveDatabase in the binary).
func MainWith(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string, resolve migrate.DatabaseResolver) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	fs := flag.NewFlagSet("switchback runbook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, Usage) }
	adminURL := fs.String("admin", cmpOr(env("SWITCHBACK_ADMIN"), admin.DefaultAdminURL), "")
	token := fs.String("token", env("SWITCHBACK_TOKEN"), "")
	db := fs.String("db", "", "")
	dir := fs.String("dir", "./migrations", "")
	database := fs.String("database", "", "")
	config := fs.String("config", "./Caddyfile", "")
	pos, err := cmdline.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return cmdline.ExitOK
	}
	if err != nil {
		return cmdline.ExitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "switchback runbook: want one deployment name, got %d arguments\n%s", len(pos), Usage)
		return cmdline.ExitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *database != "" && (set["db"] || set["dir"]):
		fmt.Fprintf(stderr, "switchback runbook: --database %s and --db/--dir: give one; --database reads the address and the directory from the gateway's Caddyfile\n", *database)
		return cmdline.ExitUsage
	case set["config"] && *database == "":
		fmt.Fprintf(stderr, "switchback runbook: --config %s: applies with --database only\n", *config)
		return cmdline.ExitUsage
	}
	c, err := admin.NewClient(*adminURL, *token)
	if err != nil {
		fmt.Fprintf(stderr, "switchback runbook: %v\n", err)
		return cmdline.ExitUsage
	}
	c.Agent = "cli"
	c.HTTP = &http.Client{Timeout: 30 * time.Second}
	b, err := Live(ctx, Source{Client: c, Admin: *adminURL, Deployment: pos[0], Database: *db, MigrationsDir: *dir,
		DatabaseName: *database, Config: *config, Resolve: resolve})
	if err != nil {
		fmt.Fprintf(stderr, "switchback runbook: %v\n", err)
		return cmdline.ExitError
	}
	fmt.Fprint(stdout, Markdown(b))
	return cmdline.ExitOK
}

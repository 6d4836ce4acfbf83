package runbook

import (
	"context"
	"io"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/migrate"
)

// Run runs c in this process exactly as the switchback binary runs it,
// and returns its exit status (cmdline.ExitOK on success). env reads
// SWITCHBACK_ADMIN and SWITCHBACK_TOKEN, as the binary reads the
// environment.
func Run(ctx context.Context, c Command, stdout, stderr io.Writer, env func(string) string) int {
	return RunWith(ctx, c, stdout, stderr, env, nil)
}

// RunWith is Run with resolve, which reads `migrate --database NAME
// --config FILE` from the gateway's Caddyfile as the binary does
// (caddymodule.ResolveDatabase); with a nil resolve --database is
// refused.
func RunWith(ctx context.Context, c Command, stdout, stderr io.Writer, env func(string) string, resolve migrate.DatabaseResolver) int {
	if len(c.Args) > 0 && c.Args[0] == "migrate" {
		return migrate.MainWith(ctx, c.Args[1:], stdout, stderr, resolve)
	}
	return admin.RunCLI(ctx, c.Args, stdout, stderr, env)
}

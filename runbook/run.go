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
	if len(c.Args) > 0 && c.Args[0] == "migrate" {
		return migrate.Main(ctx, c.Args[1:], stdout, stderr)
	}
	return admin.RunCLI(ctx, c.Args, stdout, stderr, env)
}

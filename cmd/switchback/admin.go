package main

import (
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/a8e2c47e/switchback/admin"
)

// The admin CLI commands (status, flip, weights, ...) are Caddy
// subcommands; the admin package parses their arguments so they are tested
// without Caddy.
func init() {
	for _, c := range admin.Commands() {
		caddycmd.RegisterCommand(caddycmd.Command{
			Name:  c.Name,
			Usage: c.Usage + " [--admin URL] [--token T] [--reason R] [--if-match V] [--json]",
			Short: c.Short,
			Long: c.Short + `.

The admin API address comes from --admin or SWITCHBACK_ADMIN (default
http://127.0.0.1:9180), the bearer token from --token or SWITCHBACK_TOKEN.`,
			CobraFunc: func(cmd *cobra.Command) {
				cmd.Example = "  " + strings.ReplaceAll(admin.Example(c.Name), "\n", "\n  ")
				// Listed, grouped, in the overview above Caddy's commands;
				// hidden from Caddy's own list so that one is Caddy's.
				cmd.Hidden = true
				cmd.DisableFlagParsing = true
				cmd.RunE = func(cmd *cobra.Command, args []string) error {
					code := admin.RunCLI(cmd.Context(), append([]string{c.Name}, args...), os.Stdout, os.Stderr, os.Getenv)
					if code != 0 {
						os.Exit(code)
					}
					return nil
				}
			},
		})
	}
}

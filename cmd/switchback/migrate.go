package main

import (
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/a8e2c47e/switchback/caddymodule"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/migrate"
)

const migrateShort = "Reversible database migrations with verified round trips and data snapshots"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "migrate",
		Usage: "<create|up|down|status|verify|lint|snapshot|resolve> [--db <url> | --database <name> [--config <Caddyfile>]] [--dir <dir>] [--json]",
		Short: migrateShort,
		Long:  migrate.Usage,
		CobraFunc: func(cmd *cobra.Command) {
			// The migrate package parses its own subcommands and flags, so
			// the whole command line is testable without Caddy.
			cmd.DisableFlagParsing = true
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if code := migrate.MainWith(cmd.Context(), args, os.Stdout, os.Stderr, caddymodule.ResolveDatabase); code != cmdline.ExitOK {
					os.Exit(code)
				}
				return nil
			}
		},
	})
}

package main

import (
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/a8e2c47e/switchback/caddymodule"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/runbook"
)

const runbookShort = "Print a Markdown runbook for a deployment, generated from its live configuration"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "runbook",
		Usage: "DEPLOYMENT [--database NAME --config FILE | --db URL --dir DIR] [--admin URL] [--token T]",
		Short: runbookShort,
		Long:  runbook.Usage,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Hidden = true // listed, grouped, in the overview above Caddy's commands
			cmd.DisableFlagParsing = true
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				if code := runbook.MainWith(cmd.Context(), args, os.Stdout, os.Stderr, os.Getenv, caddymodule.ResolveDatabase); code != cmdline.ExitOK {
					os.Exit(code)
				}
				return nil
			}
		},
	})
}

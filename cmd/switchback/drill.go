package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/a8e2c47e/switchback/caddymodule"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/drill"
)

const drillShort = "Exercise a rollback path end to end and measure trigger to recovery from the client's side"

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "drill",
		Usage: "<" + strings.Join(append(drill.Names(), "all"), "|") + "|history> [--trigger manual|guard|both] [--json] [--report DIR]",
		Short: drillShort,
		Long:  fmt.Sprintf(drill.Usage, strings.Join(append(drill.Names(), "all"), ", ")),
		CobraFunc: func(cmd *cobra.Command) {
			cmd.DisableFlagParsing = true
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				// The sandbox's gateway and the manual trigger's
				// commands run this very binary, as an engineer would.
				self, err := os.Executable()
				if err != nil {
					return fmt.Errorf("drill: find the switchback binary: %w", err)
				}
				// Ctrl-C ends the drill through its context, so faults are
				// cleared and the sandbox is torn down, not orphaned.
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				code := drill.MainWith(ctx, args, os.Stdout, os.Stderr, os.Getenv, self, caddymodule.ResolveDatabase)
				stop()
				if code != cmdline.ExitOK {
					os.Exit(code)
				}
				return nil
			}
		},
	})
}

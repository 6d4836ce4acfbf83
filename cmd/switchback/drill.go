package main

import (
	"fmt"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

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
				if code := drill.Main(cmd.Context(), args, os.Stdout, os.Stderr, os.Getenv, self); code != cmdline.ExitOK {
					os.Exit(code)
				}
				return nil
			}
		},
	})
}

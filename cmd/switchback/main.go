// Command switchback is Caddy with its standard modules and Switchback's.
package main

import (
	"os"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/a8e2c47e/switchback/admin"
	_ "github.com/a8e2c47e/switchback/caddymodule"
)

func main() {
	// Caddy's help prints the root's long description before its own list
	// of commands: Switchback's commands, grouped, come first there.
	caddy.CustomBinaryName = "switchback"
	caddy.CustomLongDescription = admin.Overview(admin.HelpGroup{
		Title:    "Database",
		Commands: []admin.CommandInfo{{Name: "migrate", Short: migrateShort}},
	}, admin.HelpGroup{
		Title:    "Drills",
		Commands: []admin.CommandInfo{{Name: "drill", Short: drillShort}, {Name: "runbook", Short: runbookShort}},
	})
	os.Args = append(os.Args[:1:1], commandFirst(os.Args[1:])...)
	caddycmd.Main()
}

// Command switchback is Caddy with its standard modules and Switchback's.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/a8e2c47e/switchback/caddymodule"
)

func main() { caddycmd.Main() }

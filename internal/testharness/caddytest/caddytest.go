// Package caddytest runs a real Caddy server inside the test process from a
// Caddyfile, on a free loopback port. (Not Caddy's own caddytest package,
// which drives a server through its admin API.)
//
// The modules a Caddyfile names must be linked into the test binary: a
// package's tests import what they load (caddymodule's tests are
// caddymodule). It imports no package of this module but testharness, so
// caddymodule's internal tests can use it.
package caddytest

import (
	"fmt"
	"net"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile" // the caddyfile adapter

	"github.com/a8e2c47e/switchback/internal/testharness"
)

// Caddyfile is a whole Caddyfile: global options without Caddy's admin
// endpoint, automatic HTTPS or saved config, then global, and one site
// served on addr (such as http://127.0.0.1:8080) with the directives in
// site.
func Caddyfile(global, addr, site string) string {
	return fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n\t%s\n}\n%s {\n%s\n}\n", global, addr, site)
}

// Start serves site (directives, as in a site block) with the global
// options global (possibly empty) on a free loopback port, waits until the
// port accepts connections, and stops Caddy when the test ends. It returns
// the site's base URL.
func Start(t testing.TB, global, site string) string {
	t.Helper()
	port := testharness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	Run(t, Caddyfile(global, base, site))
	testharness.WaitFor(t, "caddy to listen on "+base, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return base
}

// Run adapts a whole Caddyfile and runs it in this process until the test
// ends, failing the test if Caddy refuses it. Caddy's data and config
// directories are temporary ones of the test's own.
func Run(t testing.TB, src string) {
	t.Helper()
	if err := Load(t, src); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// Load adapts a whole Caddyfile and loads it, returning Caddy's error; on
// an error Caddy runs nothing of it. A Caddyfile the adapter refuses fails
// the test. The caller stops what loaded (caddy.Stop).
func Load(t testing.TB, src string) error {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapt: %v\n%s", err, src)
	}
	return caddy.Load(cfg, true)
}

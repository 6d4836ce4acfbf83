package caddymodule

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/internal/testharness"
)

// jsonConfig is a Caddy JSON config with one server per handler, each on a
// free port, as a JSON config (not a Caddyfile) would declare them.
func jsonConfig(t *testing.T, handlers ...map[string]any) []byte {
	t.Helper()
	servers := map[string]any{}
	for i, h := range handlers {
		h["handler"] = "switchback"
		servers[fmt.Sprintf("srv%d", i)] = map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", testharness.FreePort(t))},
			"routes": []any{map[string]any{"handle": []any{h}}},
		}
	}
	cfg, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps":  map[string]any{"http": map[string]any{"servers": servers}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func checkoutHandler(blue, green string) map[string]any {
	return map[string]any{
		"deployment": "checkout",
		"pools": map[string]any{
			"blue":  map[string]any{"upstreams": []string{blue}},
			"green": map[string]any{"upstreams": []string{green}},
		},
		"weights": map[string]float64{"blue": 100, "green": 0},
	}
}

// TestDeploymentDeclaredTwiceInOneConfig: two handlers of one config that
// declare the same deployment differently are refused (the second would
// silently serve the first one's pools); identical copies, which the
// Caddyfile makes for a site with several addresses, and the old and new
// config of a reload are not a clash.
func TestDeploymentDeclaredTwiceInOneConfig(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Cleanup(func() { _ = caddy.Stop() })

	clash := jsonConfig(t, checkoutHandler("127.0.0.1:9001", "127.0.0.1:9002"), checkoutHandler("127.0.0.1:9101", "127.0.0.1:9102"))
	var listen []string
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct{ Listen []string }
			}
		}
	}
	if err := json.Unmarshal(clash, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		listen = append(listen, srv.Listen...)
	}
	err := caddy.Load(clash, true)
	if err == nil {
		t.Fatal("load succeeded, want the second declaration of checkout refused")
	}
	for _, w := range append([]string{"deployment: checkout: declared twice", "blue=127.0.0.1:9001", "blue=127.0.0.1:9101"}, listen...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}

	same := jsonConfig(t, checkoutHandler("127.0.0.1:9001", "127.0.0.1:9002"), checkoutHandler("127.0.0.1:9001", "127.0.0.1:9002"))
	if err := caddy.Load(same, true); err != nil {
		t.Fatalf("identical declarations: %v", err)
	}
	reload := jsonConfig(t, checkoutHandler("127.0.0.1:9201", "127.0.0.1:9202"))
	if err := caddy.Load(reload, true); err != nil {
		t.Fatalf("reload with other pools: %v", err)
	}
	d, ok := LookupDeployment("checkout")
	if !ok {
		t.Fatal("checkout not live after the reload")
	}
	if got := d.Snapshot().Config().Pools["blue"].Upstreams[0]; got != "127.0.0.1:9201" {
		t.Errorf("after reload blue = %s, want the new config's 127.0.0.1:9201", got)
	}
}

// TestJSONConfigRefusesPlaceholderUpstream: the JSON form is validated by
// gateway like every other path, so a placeholder that would let a request
// header choose the upstream host never loads.
func TestJSONConfigRefusesPlaceholderUpstream(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Cleanup(func() { _ = caddy.Stop() })
	err := caddy.Load(jsonConfig(t, checkoutHandler("{http.request.header.X-Evil}:9001", "127.0.0.1:9002")), true)
	if err == nil {
		t.Fatal("load succeeded, want the placeholder upstream refused")
	}
	for _, w := range []string{"pools.blue.upstreams", `"{http.request.header.X-Evil}:9001"`, "placeholders", "want host:port"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

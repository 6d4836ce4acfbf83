package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// servedPool asks the gateway which pool serves a user, and at which version.
func servedPool(t *testing.T, base, user string) (pool, version string) {
	t.Helper()
	e, _ := get(t, &http.Client{}, base+"/", map[string]string{"X-User-ID": user})
	return e.Pool, e.Switchback.Version
}

func siteWithStore(ups testharness.Backends, live string) string {
	return fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live %s
		sticky header X-User-ID
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green), live)
}

func TestStoreBootstrapAndWatch(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	base := caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir()),
		siteWithStore(ups, "blue"))

	// The Caddyfile's document became version 1 in etcd.
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Meta.Version != 1 || doc.Meta.Source != configstore.SourceBootstrap || doc.Config.Weights["blue"] != 100 {
		t.Fatalf("bootstrapped %+v, want version 1 from bootstrap with blue live", doc.Meta)
	}

	// A write to the store reaches the gateway without a reload.
	_, err = store.Update(t.Context(), "checkout", 1, configstore.Meta{Author: "test", Source: configstore.SourceAPI, Reason: "flip"},
		func(c *gateway.Config) error {
			c.Weights = map[string]float64{"blue": 0, "green": 100}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "version 2 to be served", func() bool {
		pool, v := servedPool(t, base, "u1")
		return pool == "green" && v == "2"
	})

	// The flip made blue the rollback target: state beside the document,
	// which the app keeps for the guard (its view and its fallback target).
	app, err := caddy.ActiveContext().App("switchback")
	if err != nil {
		t.Fatal(err)
	}
	// The handlers serve a version just before the app records its state.
	testharness.WaitFor(t, "the app to record blue as retained", func() bool {
		_, ok := app.(*App).retainedPools("checkout")["blue"]
		return ok
	})
}

func TestStoreWinsOverCaddyfile(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	stateDir := t.TempDir()
	global := fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), stateDir)

	// First start: blue is live; then green goes live through the store.
	base := caddytest.Start(t, global, siteWithStore(ups, "blue"))
	if _, err := store.Update(t.Context(), "checkout", 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI},
		func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 0, "green": 100}; return nil }); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "green to be served", func() bool { p, _ := servedPool(t, base, "u1"); return p == "green" })

	// A restart with a Caddyfile that still says blue keeps etcd's green.
	base = caddytest.Start(t, global, siteWithStore(ups, "blue"))
	if pool, v := servedPool(t, base, "u1"); pool != "green" || v != "2" {
		t.Errorf("after restart: %s at version %s, want green at version 2 (etcd is the truth)", pool, v)
	}

	// The last-known-good file holds version 2.
	waitForLastKnownGood(t, stateDir, "checkout", 2)
}

func TestBootFromLastKnownGoodWhenStoreDown(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	stateDir := t.TempDir()
	base := caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), stateDir),
		siteWithStore(ups, "blue"))
	if _, err := store.Update(t.Context(), "checkout", 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI},
		func(c *gateway.Config) error { c.Weights = map[string]float64{"blue": 0, "green": 100}; return nil }); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "green to be served", func() bool { p, _ := servedPool(t, base, "u1"); return p == "green" })
	waitForLastKnownGood(t, stateDir, "checkout", 2) // recorded after it is served

	// etcd goes away; a gateway starting now serves the last-known-good.
	endpoint := e.Endpoint()
	e.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := store.Get(ctx, "checkout"); !errors.Is(err, configstore.ErrUnavailable) {
		t.Fatalf("store.Get with etcd stopped = %v, want ErrUnavailable", err)
	}
	base = caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", endpoint, stateDir),
		siteWithStore(ups, "blue"))
	if pool, v := servedPool(t, base, "u1"); pool != "green" || v != "2" {
		t.Errorf("booted during outage: %s at version %s, want the last-known-good green at version 2", pool, v)
	}
}

func TestGuardNeedsTheApp(t *testing.T) {
	src := "{\n\tadmin off\n\tpersist_config off\n}\nhttp://127.0.0.1:0 {\n\tswitchback checkout {\n\t\tpool blue 127.0.0.1:1\n\t\tpool green 127.0.0.1:2\n\t\tguard {\n\t\t\terror_rate 5%\n\t\t}\n\t}\n}\n"
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	err = caddy.Load(cfg, true)
	t.Cleanup(func() { _ = caddy.Stop() })
	if err == nil || !strings.Contains(err.Error(), "need the switchback global option") {
		t.Errorf("load with a guard and no app: %v; want an error saying it needs the switchback global option", err)
	}
}

package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/examples/backend"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// healthSeries returns the upstreams reverse_proxy's health gauge has a
// series for in the running config's metrics.
func healthSeries(t *testing.T) []string {
	t.Helper()
	ctx := caddy.ActiveContext()
	mfs, err := ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "caddy_reverse_proxy_upstreams_healthy" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "upstream" {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// settledGoroutines waits until the goroutine count stops falling and
// returns it.
func settledGoroutines(t *testing.T) int {
	t.Helper()
	last := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n >= last {
			return n
		}
		last = n
	}
	return last
}

// TestRetiredProxiesStop changes a pool's upstreams 200 times: every change
// provisions a reverse_proxy with an active health checker and retires the
// one before, whose goroutines must stop and whose health series must go.
func TestRetiredProxiesStop(t *testing.T) {
	e := etcdtest.Start(t)
	store := e.Store(t)
	blue := httptest.NewServer(backend.New("blue", "v1"))
	t.Cleanup(blue.Close)
	// Green cycles through these, so each change is a new upstream list.
	greens := make([]*httptest.Server, 20)
	for i := range greens {
		greens[i] = httptest.NewServer(backend.New("green", "v2"))
		t.Cleanup(greens[i].Close)
	}
	caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		proxy {
			health_uri /health
			health_interval 1s
		}
	}`, testharness.HostPort(blue), testharness.HostPort(greens[0])))
	dep, ok := LookupDeployment("checkout")
	if !ok {
		t.Fatal("checkout is not live")
	}

	version := dep.Snapshot().Version()
	move := func(green string) {
		res, err := store.Update(t.Context(), "checkout", version,
			configstore.Meta{Author: "test", Source: configstore.SourceAPI, Reason: "move green"},
			func(c *gateway.Config) error {
				c.Pools["green"] = gateway.Pool{Upstreams: []string{green}}
				return nil
			})
		if err != nil {
			t.Fatalf("move green to %s: %v", green, err)
		}
		version = res.Doc.Meta.Version
		testharness.WaitFor(t, fmt.Sprintf("version %d live", version), func() bool { return dep.Snapshot().Version() == version })
	}

	for i := 1; i <= 10; i++ {
		move(testharness.HostPort(greens[i%len(greens)]))
	}
	after10 := settledGoroutines(t)
	for i := 11; i <= 200; i++ {
		move(testharness.HostPort(greens[i%len(greens)]))
	}
	const slack = 20 // connections and timers that come and go
	deadline := time.Now().Add(10 * time.Second)
	for n := runtime.NumGoroutine(); n > after10+slack; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d after 10 changes, %d after 200; want the retired proxies' goroutines gone", after10, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	green := testharness.HostPort(greens[200%len(greens)])
	testharness.WaitFor(t, "the live green upstream's health series", func() bool { return slices.Contains(healthSeries(t), green) })

	// Green moves onto blue's upstream: its proxy is retired and none is
	// provisioned, so nothing resets reverse_proxy's gauge; the retired
	// upstream's series must go all the same. A retired proxy's metrics
	// updater would set its series again on its next tick, every 10 s:
	// watch for one whole period that only the live upstream has one.
	move(testharness.HostPort(blue))
	for end := time.Now().Add(11 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, u := range healthSeries(t) {
			if u != testharness.HostPort(blue) {
				t.Fatalf("health series %v after 201 changes, want only the live upstream %s", healthSeries(t), testharness.HostPort(blue))
			}
		}
	}
}

// TestHealthProbesUseThePoolTransport: with TLS to the upstreams set in the
// proxy block, the switchback health checks speak TLS too.
func TestHealthProbesUseThePoolTransport(t *testing.T) {
	e := etcdtest.Start(t)
	blue := httptest.NewTLSServer(backend.New("blue", "v1"))
	t.Cleanup(blue.Close)
	green := httptest.NewTLSServer(backend.New("green", "v2"))
	t.Cleanup(green.Close)
	hp := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "https://") }
	base := caddytest.Start(t, fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		live blue
		health_uri /health
		health_interval 100ms
		proxy {
			transport http {
				tls
				tls_insecure_skip_verify
			}
		}
	}`, hp(blue), hp(green)))
	if e, _ := get(t, &http.Client{}, base+"/", nil); e.Pool != "blue" {
		t.Fatalf("served by %q, want blue over TLS", e.Pool)
	}

	app := runningApp(t)
	v := waitView(t, app, "both pools checked", func(v guard.View) bool {
		return !v.Health["blue"].Checked.IsZero() && !v.Health["green"].Checked.IsZero()
	})
	for _, pool := range []string{"blue", "green"} {
		if h := v.Health[pool]; !h.Healthy {
			t.Errorf("pool %s behind TLS: %+v, want healthy (probed through the pool's TLS transport)", pool, h)
		}
	}
}

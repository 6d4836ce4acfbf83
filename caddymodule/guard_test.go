package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/configstore"
)

// testGuard is the guard most tests use: a 5% error ceiling, judged over a
// short window so tests finish quickly, with a baseline so shared faults do
// not count.
const testGuard = `
		guard {
			error_rate 5%
			window 2s
			min_requests 20
			baseline 2x
		}`

// load sends requests from rotating users at about rps until stopped, and
// counts them by status. It only ever targets the test's loopback gateway.
type load struct {
	stop    chan struct{}
	done    sync.WaitGroup
	total   atomic.Int64
	failed  atomic.Int64
	byPool  sync.Map // pool -> *atomic.Int64
	lastErr atomic.Value
}

func startLoad(t *testing.T, base string, rps int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		deadline := time.After(60 * time.Second) // hard bound on any test's load
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("user-%d", i%5000))
			resp, err := c.Do(req)
			l.total.Add(1)
			if err != nil {
				l.failed.Add(1)
				l.lastErr.Store(err.Error())
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				l.failed.Add(1)
			}
			pool := resp.Header.Get("X-Backend-Pool")
			n, _ := l.byPool.LoadOrStore(pool, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
	}()
	t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

// runningApp is the switchback app of the config Caddy is running.
func runningApp(t *testing.T) *App {
	t.Helper()
	ctx := caddy.ActiveContext()
	app, err := ctx.App("switchback")
	if err != nil {
		t.Fatal(err)
	}
	return app.(*App)
}

func setFault(t *testing.T, backendURL, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, backendURL+"/_fault", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /_fault %s: %d", body, resp.StatusCode)
	}
}

// guardedGateway starts etcd, two backends and a gateway whose deployment
// has the given weights, flags and guard settings.
func guardedGateway(t *testing.T, body string) (upstreams, string, *configstore.Store) {
	t.Helper()
	e, store := startEtcd(t)
	ups := startBackends(t)
	base := startCaddyGlobal(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoints()[0], t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		%s
	}`, hostport(ups.blue), hostport(ups.green), body))
	return ups, base, store
}

// waitView polls the guard's view of checkout until cond holds.
func waitView(t *testing.T, app *App, what string, cond func(GuardView) bool) GuardView {
	t.Helper()
	var v GuardView
	waitFor(t, what, func() bool {
		var ok bool
		v, ok = app.guardView("checkout")
		return ok && cond(v)
	})
	return v
}

func TestGuardFallsBackFromBadCanary(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 80 green 20
`+testGuard)
	startLoad(t, base, 200)
	app := runningApp(t)
	waitView(t, app, "healthy traffic on both pools", func(v GuardView) bool {
		return v.Pools["green"].Requests >= 20 && v.Pools["blue"].Requests >= 20
	})

	setFault(t, ups.green.URL, `{"error_rate": 1}`)
	var doc configstore.Document
	waitFor(t, "the guard to take green off traffic", func() bool {
		var err error
		doc, err = store.Get(t.Context(), "checkout")
		return err == nil && doc.Config.Weights["green"] == 0
	})
	if doc.Meta.Source != configstore.SourceGuard || doc.Config.Weights["blue"] != 100 {
		t.Fatalf("fallback version %+v with weights %v; want source guard, blue 100", doc.Meta, doc.Config.Weights)
	}
	if !strings.Contains(doc.Meta.Reason, "error rate") || !strings.Contains(doc.Meta.Reason, "baseline") {
		t.Errorf("fallback reason %q does not give the figures", doc.Meta.Reason)
	}
	// Clients now reach blue only.
	waitFor(t, "the gateway to apply the fallback", func() bool {
		p, v := servedPool(t, base, "probe")
		return p == "blue" && v == fmt.Sprint(doc.Meta.Version)
	})
	for i := range 50 {
		if p, _ := servedPool(t, base, fmt.Sprintf("after-%d", i)); p != "blue" {
			t.Fatalf("after fallback user %d served by %s", i, p)
		}
	}
	// The event follows the version it reports.
	evs := waitEvents(t, store, 1)
	if len(evs) != 1 || evs[0].Kind != EventFallback || evs[0].Subject != "pool:green" || evs[0].Version != doc.Meta.Version {
		t.Errorf("events %+v, want one fallback of pool:green at version %d", evs, doc.Meta.Version)
	}
}

// waitEvents polls checkout's events until there are at least n.
func waitEvents(t *testing.T, store *configstore.Store, n int) []Event {
	t.Helper()
	var evs []Event
	waitFor(t, fmt.Sprintf("%d event(s)", n), func() bool {
		var err error
		evs, err = store.Events(t.Context(), "checkout", 10)
		return err == nil && len(evs) >= n
	})
	return evs
}

// noActionAfter lets the guard judge several more slots and checks that
// the deployment is still at version want.
func noActionAfter(t *testing.T, app *App, store *configstore.Store, want uint64) {
	t.Helper()
	start := time.Now()
	waitView(t, app, "several more guard slots", func(v GuardView) bool { return v.Updated.Sub(start) > 1500*time.Millisecond })
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Meta.Version != want {
		t.Errorf("version %d (%s: %s), want %d unchanged", doc.Meta.Version, doc.Meta.Source, doc.Meta.Reason, want)
	}
}

func TestGuardIgnoresFaultSharedByBothPools(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 50 green 50
`+testGuard)
	setFault(t, ups.blue.URL, `{"error_rate": 0.5}`)
	setFault(t, ups.green.URL, `{"error_rate": 0.5}`)
	startLoad(t, base, 200)
	app := runningApp(t)
	v := waitView(t, app, "both pools over the ceiling with enough samples", func(v GuardView) bool {
		return v.Pools["blue"].Requests >= 40 && v.Pools["green"].Requests >= 40 &&
			v.Pools["blue"].ErrorRate > 20 && v.Pools["green"].ErrorRate > 20
	})
	if v.Pools["blue"].Breach != "" || v.Pools["green"].Breach != "" {
		t.Errorf("a shared fault counted as a breach: blue %q, green %q", v.Pools["blue"].Breach, v.Pools["green"].Breach)
	}
	noActionAfter(t, app, store, 1)
}

func TestGuardNeedsEnoughSamples(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 50 green 50
		guard {
			error_rate 5%
			window 2s
			min_requests 100000
		}`)
	setFault(t, ups.green.URL, `{"error_rate": 1}`)
	startLoad(t, base, 100)
	app := runningApp(t)
	waitView(t, app, "green failing", func(v GuardView) bool { return v.Pools["green"].Errors >= 20 })
	noActionAfter(t, app, store, 1)
}

func TestGuardSwitchesOffBadFlag(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 50 green 50
		flag new_payment_flow 30
		flag dark_mode 50
`+testGuard)
	for _, u := range []string{ups.blue.URL, ups.green.URL} {
		setFault(t, u, `{"error_rate": 1, "flag": "new_payment_flow"}`)
	}
	startLoad(t, base, 200)
	var doc configstore.Document
	waitFor(t, "the guard to switch new_payment_flow off", func() bool {
		var err error
		doc, err = store.Get(t.Context(), "checkout")
		return err == nil && doc.Config.Flags["new_payment_flow"].Percent == 0
	})
	if doc.Meta.Source != configstore.SourceGuard {
		t.Errorf("flag switched off by %s, want the guard", doc.Meta.Source)
	}
	if w := doc.Config.Weights; w["blue"] != 50 || w["green"] != 50 {
		t.Errorf("weights %v after a flag fallback; want the pools left at 50/50", w)
	}
	if doc.Config.Flags["dark_mode"].Percent != 50 {
		t.Errorf("dark_mode %v%%, want it left at 50", doc.Config.Flags["dark_mode"].Percent)
	}
	if evs := waitEvents(t, store, 1); evs[0].Kind != EventFlagOff || evs[0].Subject != "flag:new_payment_flow" {
		t.Errorf("events %+v, want flag_off of flag:new_payment_flow", evs)
	}
}

func TestGuardRefusesUnhealthyTarget(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 80 green 20
		guard {
			error_rate 5%
			window 2s
			min_requests 20
			cooldown 1m
		}
		health_uri /health
		health_interval 100ms`)
	app := runningApp(t)
	setFault(t, ups.blue.URL, `{"healthy": false}`) // blue serves, but fails its health checks
	waitView(t, app, "blue's health check to fail", func(v GuardView) bool {
		h, ok := v.Health["blue"]
		return ok && !h.Healthy
	})
	setFault(t, ups.green.URL, `{"error_rate": 1}`)
	startLoad(t, base, 200)
	waitFor(t, "a fallback_refused event", func() bool {
		evs, err := store.Events(t.Context(), "checkout", 10)
		return err == nil && len(evs) > 0 && evs[0].Kind == EventFallbackRefused
	})
	evs, _ := store.Events(t.Context(), "checkout", 10)
	if !strings.Contains(evs[0].Reason, "blue fails its health checks") {
		t.Errorf("refusal reason %q does not say why", evs[0].Reason)
	}
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil || doc.Meta.Version != 1 {
		t.Errorf("version %d after a refused fallback (%v), want 1", doc.Meta.Version, err)
	}
}

func TestMetricsPerPoolAndCohort(t *testing.T) {
	e, _ := startEtcd(t)
	ups := startBackends(t)
	aport := freePort(t)
	base := startCaddyGlobal(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tstate_dir %s\n\t}", e.Endpoints()[0], aport, t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 50 green 50
		sticky header X-User-ID
		flag f 50
	}`, hostport(ups.blue), hostport(ups.green)))
	setFault(t, ups.green.URL, `{"error_rate": 1}`)
	c := &http.Client{}
	for i := range 100 {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-User-ID", fmt.Sprint("m", i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", aport))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	var blue, green, greenErr, on, off float64
	for _, m := range []struct {
		prefix string
		v      *float64
	}{
		{`switchback_requests_total{deployment="checkout",pool="blue"} `, &blue},
		{`switchback_requests_total{deployment="checkout",pool="green"} `, &green},
		{`switchback_request_errors_total{deployment="checkout",pool="green"} `, &greenErr},
		{`switchback_flag_requests_total{cohort="on",deployment="checkout",flag="f"} `, &on},
		{`switchback_flag_requests_total{cohort="off",deployment="checkout",flag="f"} `, &off},
	} {
		i := strings.Index(text, m.prefix)
		if i < 0 {
			t.Fatalf("no %s in /metrics:\n%s", m.prefix, text)
		}
		fmt.Sscan(text[i+len(m.prefix):], m.v)
	}
	if blue+green != 100 || greenErr != green || on+off != 100 || green < 20 || on < 20 {
		t.Errorf("blue %v + green %v requests (green errors %v), flag on %v + off %v; want 100 in all, green all errors", blue, green, greenErr, on, off)
	}
	if !strings.Contains(text, `switchback_request_duration_seconds_count{deployment="checkout",pool="blue"}`) {
		t.Error("no latency histogram for blue")
	}
}

// TestClientCancelsAreNotSamples: clients giving up on a slow upstream are
// not the upstream failing, and their cut-short latencies are not the
// upstream's either: they are not recorded.
func TestClientCancelsAreNotSamples(t *testing.T) {
	ups, base, _ := guardedGateway(t, "weights blue 0 green 100"+testGuard)
	setFault(t, ups.green.URL, `{"latency": "2s"}`)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-User-ID", fmt.Sprint("impatient-", i))
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("a request finished before the injected latency")
		}
	}
	setFault(t, ups.green.URL, `{}`)
	for i := range 5 {
		if p, _ := servedPool(t, base, fmt.Sprint("patient-", i)); p != "green" {
			t.Fatalf("served by %s", p)
		}
	}
	app := runningApp(t)
	v := waitView(t, app, "the patient requests counted", func(v GuardView) bool { return v.Pools["green"].Requests >= 5 })
	if g := v.Pools["green"]; g.Requests != 5 || g.Errors != 0 {
		t.Errorf("green: %d requests, %d errors after 30 client timeouts and 5 answered requests; want 5 and 0", g.Requests, g.Errors)
	}
}

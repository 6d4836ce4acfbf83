package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
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
func guardedGateway(t *testing.T, body string) (testharness.Backends, string, *configstore.Store) {
	t.Helper()
	e := etcdtest.Start(t)
	store := e.Store(t)
	ups := testharness.StartBackends(t)
	base := caddytest.Start(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin off\n\t\tstate_dir %s\n\t}", e.Endpoint(), t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		sticky header X-User-ID
		%s
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green), body))
	return ups, base, store
}

// waitView polls the guard's view of checkout until cond holds.
func waitView(t *testing.T, app *App, what string, cond func(guard.View) bool) guard.View {
	t.Helper()
	var v guard.View
	testharness.WaitFor(t, what, func() bool {
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
	waitView(t, app, "healthy traffic on both pools", func(v guard.View) bool {
		return v.Pools["green"].Requests >= 20 && v.Pools["blue"].Requests >= 20
	})

	setFault(t, ups.Green.URL, `{"error_rate": 1}`)
	var doc configstore.Document
	testharness.WaitFor(t, "the guard to take green off traffic", func() bool {
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
	testharness.WaitFor(t, "the gateway to apply the fallback", func() bool {
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
	if len(evs) != 1 || evs[0].Kind != control.EventFallback || evs[0].Subject != "pool:green" || evs[0].Version != doc.Meta.Version {
		t.Errorf("events %+v, want one fallback of pool:green at version %d", evs, doc.Meta.Version)
	}
}

// breachGauges lists checkout's switchback_guard_breaching series as
// KIND/NAME=VALUE, sorted.
func breachGauges(t *testing.T, app *App) []string {
	t.Helper()
	mfs, err := app.ctx.GetMetricsRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "switchback_guard_breaching" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["deployment"] == "checkout" {
				out = append(out, fmt.Sprintf("%s/%s=%g", labels["kind"], labels["name"], m.GetGauge().GetValue()))
			}
		}
	}
	slices.Sort(out)
	return out
}

// waitEvents polls checkout's events until there are at least n.
func waitEvents(t *testing.T, store *configstore.Store, n int) []configstore.Event {
	t.Helper()
	var evs []configstore.Event
	testharness.WaitFor(t, fmt.Sprintf("%d event(s)", n), func() bool {
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
	waitView(t, app, "several more guard slots", func(v guard.View) bool { return v.Updated.Sub(start) > 1500*time.Millisecond })
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if doc.Meta.Version != want {
		t.Errorf("version %d (%s: %s), want %d unchanged", doc.Meta.Version, doc.Meta.Source, doc.Meta.Reason, want)
	}
}

// TestGuardWritesWhatJudgeSays drives the writer with judgements of
// windows built by hand, step by step on one gateway, instead of waiting on
// live traffic: the rules are guard.TestJudge's; this is the writing.
func TestGuardWritesWhatJudgeSays(t *testing.T) {
	_, _, store := guardedGateway(t, `
		weights blue 80 green 20
		flag new_payment_flow 30
`+testGuard)
	app := runningApp(t)
	// judge judges checkout's live snapshot over a window with healthy
	// blue traffic and what fail adds.
	judge := func(health map[string]guard.PoolHealth, fail func(m *guard.Meter, green int)) (*gateway.Snapshot, guard.Action) {
		t.Helper()
		dep, _ := LookupDeployment("checkout")
		snap := dep.Snapshot()
		reg := guard.NewRegistry()
		var pools []string
		for _, p := range snap.Pools() {
			pools = append(pools, p.Name)
		}
		m := reg.Meter(pools, snap.FlagNames())
		blue, _ := snap.PoolIndex("blue")
		green, _ := snap.PoolIndex("green")
		for range 200 {
			m.Record(blue, 0, false, time.Millisecond)
		}
		fail(m, green)
		_, act := guard.Judge(guard.Input{Snapshot: snap, Policy: guard.Compile(snap.Guard()), Window: reg.Stats(),
			Health: health, Instance: app.Instance, Now: time.Now()})
		return snap, act
	}
	greenFails := func(m *guard.Meter, green int) {
		for range 50 {
			m.Record(green, 0, true, time.Millisecond)
		}
	}
	flagFails := func(m *guard.Meter, green int) {
		for range 50 {
			m.Record(green, 1, true, time.Millisecond)
		}
	}
	blueDown := map[string]guard.PoolHealth{"blue": {Error: "127.0.0.1:1: connection refused"}}

	// The loop's own judgement of the quiet deployment sets its gauges.
	waitView(t, app, "a first judgement", func(guard.View) bool { return true })
	if got, want := breachGauges(t, app), []string{"flag/new_payment_flow=0", "pool/blue=0", "pool/green=0"}; !slices.Equal(got, want) {
		t.Errorf("breach gauges %v, want %v", got, want)
	}

	refusedSnap, refused := judge(blueDown, greenFails)
	_, fallback := judge(nil, greenFails)
	steps := []struct {
		name    string
		snap    func() (*gateway.Snapshot, guard.Action)
		kind    guard.ActionKind
		version uint64 // stored afterwards
		events  int    // recorded so far
		event   string // the newest event's kind and subject
		check   func(configstore.Document) bool
	}{
		{"refused: the target fails its health checks", func() (*gateway.Snapshot, guard.Action) { return refusedSnap, refused },
			guard.Refused, 1, 1, control.EventFallbackRefused + " pool:green", nil},
		{"fallback", func() (*gateway.Snapshot, guard.Action) { return refusedSnap, fallback },
			guard.Fallback, 2, 2, control.EventFallback + " pool:green",
			func(d configstore.Document) bool {
				return d.Config.Weights["blue"] == 100 && d.Config.Weights["green"] == 0
			}},
		// Another instance judged version 1 too: its write loses the
		// compare-and-swap and records nothing.
		{"a second fallback of the same version writes nothing", func() (*gateway.Snapshot, guard.Action) { return refusedSnap, fallback },
			guard.Fallback, 2, 2, control.EventFallback + " pool:green", nil},
		{"flag off", func() (*gateway.Snapshot, guard.Action) { return judge(nil, flagFails) },
			guard.FlagOff, 3, 3, control.EventFlagOff + " flag:new_payment_flow",
			func(d configstore.Document) bool {
				return d.Config.Flags["new_payment_flow"].Percent == 0 && d.Config.Weights["blue"] == 100
			}},
	}
	for _, st := range steps {
		snap, act := st.snap()
		if act.Kind != st.kind {
			t.Fatalf("%s: judged %v (%s), want %v", st.name, act.Kind, act.Reason, st.kind)
		}
		app.act(t.Context(), snap, act)
		doc, err := store.Get(t.Context(), "checkout")
		if err != nil {
			t.Fatal(err)
		}
		if doc.Meta.Version != st.version || (st.version > 1 && doc.Meta.Source != configstore.SourceGuard) || (st.check != nil && !st.check(doc)) {
			t.Errorf("%s: version %d by %s with weights %v, flags %v; want version %d", st.name, doc.Meta.Version, doc.Meta.Source, doc.Config.Weights, doc.Config.Flags, st.version)
		}
		// The fallback is live here at once, not after the watch.
		if dep, _ := LookupDeployment("checkout"); dep.Snapshot().Version() != st.version {
			t.Errorf("%s: live version %d, want %d", st.name, dep.Snapshot().Version(), st.version)
		}
		evs, err := store.Events(t.Context(), "checkout", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != st.events || evs[0].Kind+" "+evs[0].Subject != st.event || evs[0].Version != st.version || evs[0].Reason != act.Reason {
			t.Errorf("%s: %d events, newest %+v; want %d, newest %s at version %d", st.name, len(evs), evs, st.events, st.event, st.version)
		}
	}
}

func TestGuardSwitchesOffBadFlag(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 50 green 50
		flag new_payment_flow 30
		flag dark_mode 50
`+testGuard)
	for _, u := range []string{ups.Blue.URL, ups.Green.URL} {
		setFault(t, u, `{"error_rate": 1, "flag": "new_payment_flow"}`)
	}
	startLoad(t, base, 200)
	var doc configstore.Document
	testharness.WaitFor(t, "the guard to switch new_payment_flow off", func() bool {
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
	if evs := waitEvents(t, store, 1); evs[0].Kind != control.EventFlagOff || evs[0].Subject != "flag:new_payment_flow" {
		t.Errorf("events %+v, want flag_off of flag:new_payment_flow", evs)
	}
}

func TestMetricsPerPoolAndCohort(t *testing.T) {
	e := etcdtest.Start(t)
	ups := testharness.StartBackends(t)
	aport := testharness.FreePort(t)
	base := caddytest.Start(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tstate_dir %s\n\t}", e.Endpoint(), aport, t.TempDir()),
		fmt.Sprintf(`
	switchback checkout {
		pool blue %s
		pool green %s
		weights blue 50 green 50
		sticky header X-User-ID
		flag f 50
	}`, testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))
	setFault(t, ups.Green.URL, `{"error_rate": 1}`)
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

	// Without a guard, green failing every request is shown, but no breach
	// gauge reads 0 as if a guard had judged it healthy, and the view says
	// that nothing is judged.
	app := runningApp(t)
	waitView(t, app, "the requests in the guard's window", func(v guard.View) bool {
		return v.Pools["blue"].Requests+v.Pools["green"].Requests == 100
	})
	if got := breachGauges(t, app); len(got) != 0 {
		t.Errorf("breach gauges %v without a guard, want none", got)
	}
	ac, err := admin.NewClient(fmt.Sprintf("http://127.0.0.1:%d", aport), "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ac.Guard(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if v.Guard || v.Note != guard.NoGuardNote || v.Pools["green"].Errors != v.Pools["green"].Requests || v.Pools["green"].Breach != "" {
		t.Errorf("guard view %+v; want no guard, the note, green's errors and no breach", v)
	}
	if f := v.Flags["f"]; f.On.Requests+f.Off.Requests != 100 {
		t.Errorf("flag f cohorts on %d + off %d requests, want 100", f.On.Requests, f.Off.Requests)
	}
}

// TestClientCancelsAreNotSamples: clients giving up on a slow upstream are
// not the upstream failing, and their cut-short latencies are not the
// upstream's either: they are not recorded.
func TestClientCancelsAreNotSamples(t *testing.T) {
	ups, base, _ := guardedGateway(t, "weights blue 0 green 100"+testGuard)
	setFault(t, ups.Green.URL, `{"latency": "2s"}`)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	for i := range 30 {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header.Set("X-User-ID", fmt.Sprint("impatient-", i))
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("a request finished before the injected latency")
		}
	}
	setFault(t, ups.Green.URL, `{}`)
	for i := range 5 {
		if p, _ := servedPool(t, base, fmt.Sprint("patient-", i)); p != "green" {
			t.Fatalf("served by %s", p)
		}
	}
	app := runningApp(t)
	v := waitView(t, app, "the patient requests counted", func(v guard.View) bool { return v.Pools["green"].Requests >= 5 })
	if g := v.Pools["green"]; g.Requests != 5 || g.Errors != 0 {
		t.Errorf("green: %d requests, %d errors after 30 client timeouts and 5 answered requests; want 5 and 0", g.Requests, g.Errors)
	}
}

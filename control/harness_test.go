package control

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

// testEtcd is one real etcd for the package; every test keeps its keys
// under a prefix of its own.
var testEtcd *configstore.Embedded

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchback-control-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testEtcd, err = configstore.StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	testEtcd.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

var prefixes atomic.Int64

// t0 is the tests' clock at the start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is a Control of instance "gw-a" on a store of its own holding
// deployment shop (blue 100, green 0, flag new_cart 5%, a guard), with a
// clock and a guard view the test sets.
type harness struct {
	t     *testing.T
	store *configstore.Store
	ctl   *Control

	stamps atomic.Int64 // storeClock's calls

	// mu protects now and views.
	mu    sync.Mutex
	now   time.Time
	views map[string]guard.View
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	c, err := testEtcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &harness{t: t, now: t0, views: map[string]guard.View{}}
	h.store, err = configstore.New(c, configstore.WithPrefix(fmt.Sprintf("/control-test/%d", prefixes.Add(1))), configstore.WithClock(h.storeClock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })
	h.ctl, err = New(Options{Store: h.store, Instance: "gw-a", Now: h.clock, GuardView: h.view})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{
		Name: "shop",
		Pools: map[string]gateway.Pool{
			"blue":  {Upstreams: []string{"127.0.0.1:9001"}},
			"green": {Upstreams: []string{"127.0.0.1:9002"}},
		},
		Weights: map[string]float64{"blue": 100, "green": 0},
		Flags:   map[string]gateway.Flag{"new_cart": {Percent: 5}},
		Guard:   &gateway.Guard{ErrorRate: 5, MinRequests: 20},
	}
	if _, _, err := h.store.Bootstrap(t.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

// storeClock stamps versions and events: a millisecond later each time,
// so events list in the order they were recorded.
func (h *harness) storeClock() time.Time {
	return t0.Add(time.Duration(h.stamps.Add(1)) * time.Millisecond)
}

func (h *harness) setNow(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = t
}

func (h *harness) view(name string) (guard.View, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.views[name]
	return v, ok
}

// see sets the guard's view of shop: judged at now, at the current
// version, with p as the population of pool green and of flag new_cart's
// on cohort.
func (h *harness) see(p guard.Population, now time.Time) {
	h.t.Helper()
	doc := h.doc()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.views["shop"] = guard.View{Deployment: "shop", Instance: "gw-a", Version: doc.Meta.Version, Guard: true, Updated: now,
		Pools: map[string]guard.Population{"green": p, "blue": {Requests: 200}},
		Flags: map[string]guard.Cohorts[guard.Population]{"new_cart": {On: p}}}
}

func (h *harness) doc() configstore.Document {
	h.t.Helper()
	doc, err := h.store.Get(h.t.Context(), "shop")
	if err != nil {
		h.t.Fatal(err)
	}
	return doc
}

func (h *harness) rollout() rollout.Rollout {
	h.t.Helper()
	r, _, err := h.ctl.Rollout(h.t.Context(), "shop")
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// start starts a rollout of shop as an operator would.
func (h *harness) start(target string, steps []float64, bake string) rollout.Rollout {
	h.t.Helper()
	r, err := h.ctl.Start(h.t.Context(), Op{Deployment: "shop", Author: "alice", Reason: "ship it"},
		rollout.Request{Target: target, Steps: steps, Bake: bake})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// lead makes candidate the rollout driver and resigns when the test ends.
func (h *harness) lead(candidate string) *configstore.Leader {
	h.t.Helper()
	l, err := h.store.Lead(h.t.Context(), Role, candidate, configstore.LeaseTTL(time.Second))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(l.Resign)
	return l
}

// events lists shop's events, oldest first, as "kind version: reason".
func (h *harness) events() []configstore.Event {
	h.t.Helper()
	evs, err := h.store.Events(h.t.Context(), "shop", 0)
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(evs)
	return evs
}

// history lists shop's versions after the bootstrap, oldest first, as
// "source author: reason".
func (h *harness) history() []string {
	h.t.Helper()
	metas, err := h.store.History(h.t.Context(), "shop", 0)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, m := range slices.Backward(metas) {
		if m.Source != configstore.SourceBootstrap {
			out = append(out, fmt.Sprintf("%s %s: %s", m.Source, m.Author, m.Reason))
		}
	}
	return out
}

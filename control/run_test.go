package control

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs ctl's driver until the returned stop is called, which waits
// for it; the test's end stops it too.
func run(t *testing.T, ctl *Control) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctl.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// TestRunHandsOver: a driver that stops gives up its leadership, and
// another instance's driver carries the rollout on from the store.
func TestRunHandsOver(t *testing.T) {
	h := newHarness(t)
	// The guard's view is current and healthy once known is set.
	var known atomic.Bool
	view := func(string) (guard.View, bool) {
		return guard.View{Version: 1 << 40, Updated: time.Now(), Pools: map[string]guard.Population{"green": healthy}}, known.Load()
	}
	driver := func(instance string) *Control {
		ctl, err := New(Options{Store: h.store, Instance: instance, GuardView: view})
		if err != nil {
			t.Fatal(err)
		}
		return ctl
	}
	h.start("pool:green", []float64{10, 100}, "0s")

	stopA := run(t, driver("gw-a"))
	waitFor(t, "gw-a to apply step 1", func() bool { return h.rollout().Step == 0 })
	stopA()
	if r := h.rollout(); r.Step != 0 || r.State != rollout.Running {
		t.Fatalf("after gw-a stopped: %s at step index %d: %s", r.State, r.Step, r.Message)
	}

	known.Store(true)
	run(t, driver("gw-b"))
	waitFor(t, "gw-b to finish the rollout", func() bool { return h.rollout().State == rollout.Done })
	metas, err := h.store.History(t.Context(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	var authors []string
	for _, m := range metas {
		if m.Source == configstore.SourceRollout {
			authors = append(authors, m.Author)
		}
	}
	if len(authors) != 2 || authors[0] != "gw-b" || authors[1] != "gw-a" {
		t.Errorf("steps written by %v (newest first), want gw-b then gw-a", authors)
	}
}

package caddymodule

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/rollout"
)

// driveRollouts runs n more rollout drivers for app, as App.Start runs
// one per instance, and stops them when the test ends. They campaign
// against each other and the app's own: one drives, the others wait.
func driveRollouts(t *testing.T, app *App, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			app.runRollouts(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
}

// TestRolloutThroughTheGateway is a rollout end to end: started through
// control as the admin API does, judged by the gateway's guard on live
// traffic, driven by whichever of three campaigning drivers is elected,
// and served without a failed request. The driver's rules (bakes, holds,
// aborts, fencing) are control's tests, ticked by hand.
func TestRolloutThroughTheGateway(t *testing.T) {
	_, base, store := guardedGateway(t, `
		weights blue 100 green 0
		guard {
			error_rate 5%
			window 2s
			min_requests 10
		}`)
	load := startLoad(t, base, 200)
	app := runningApp(t)
	driveRollouts(t, app, 2)
	started, err := app.control.Start(t.Context(), control.Op{Deployment: "checkout", Author: "tester", Reason: "test"},
		rollout.Request{Target: "pool:green", Steps: []float64{50, 100}, Bake: "0s"})
	if err != nil {
		t.Fatal(err)
	}

	var r rollout.Rollout
	testharness.WaitFor(t, "the rollout to end", func() bool {
		r, _, err = app.control.Rollout(t.Context(), "checkout")
		return err == nil && !r.State.Active()
	})
	if r.State != rollout.Done || r.Step != 1 {
		t.Fatalf("rollout %s at step %d: %s; want done after step 2", r.State, r.Step+1, r.Message)
	}
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if w := doc.Config.Weights; w["green"] != 100 || w["blue"] != 0 {
		t.Errorf("weights %v after the rollout, want green 100", w)
	}
	testharness.WaitFor(t, "the gateway to serve the last step", func() bool {
		p, v := servedPool(t, base, "probe")
		return p == "green" && v == fmt.Sprint(doc.Meta.Version)
	})

	// One version per step, written by the rollout, in order: three
	// drivers ran, one drove.
	metas, err := store.History(t.Context(), "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range slices.Backward(metas) {
		if m.Source != configstore.SourceBootstrap {
			got = append(got, fmt.Sprintf("%s %s", m.Source, m.Reason))
		}
	}
	want := []string{
		fmt.Sprintf("%s rollout %s step 1/2: pool green 50%% (test)", configstore.SourceRollout, started.ID),
		fmt.Sprintf("%s rollout %s step 2/2: pool green 100%% (test)", configstore.SourceRollout, started.ID),
	}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	evs := waitEvents(t, store, 4)
	var kinds []string
	for _, ev := range slices.Backward(evs) {
		kinds = append(kinds, ev.Kind)
	}
	if got, want := strings.Join(kinds, ","), "rollout_started,rollout_step,rollout_step,rollout_done"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	load.halt()
	if n := load.failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the rollout (last error %v)", n, load.total.Load(), load.lastErr.Load())
	}
}

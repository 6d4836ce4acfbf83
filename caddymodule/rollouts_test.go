package caddymodule

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/rollout"
)

// driveRollouts runs n rollout drivers for app, as App.Start does with
// one per instance, and stops them when the test ends. They campaign
// against each other: one drives, the others wait.
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

// startRollout stores a new rollout of checkout, as the admin API does.
func startRollout(t *testing.T, store *configstore.Store, target string, steps []float64, bake string) rollout.Rollout {
	t.Helper()
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	r, err := rollout.New(rollout.Request{Target: target, Steps: steps, Bake: bake, Reason: "test"}, doc.Config, "r-test", "tester", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r.Stamp(time.Now())
	if _, err := store.PutRecord(t.Context(), rollout.RecordKind, r.Deployment, r, 0); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitRollout polls checkout's rollout until cond holds.
func waitRollout(t *testing.T, store *configstore.Store, what string, cond func(rollout.Rollout) bool) rollout.Rollout {
	t.Helper()
	var r rollout.Rollout
	testharness.WaitFor(t, what, func() bool {
		rec, err := store.GetRecord(t.Context(), rollout.RecordKind, "checkout")
		if err != nil {
			return false
		}
		r, err = rollout.Decode("checkout", rec.Value)
		return err == nil && cond(r)
	})
	return r
}

func TestRolloutAdvancesToDone(t *testing.T) {
	_, base, store := guardedGateway(t, `
		weights blue 100 green 0
		guard {
			error_rate 5%
			window 2s
			min_requests 20
		}`)
	load := testharness.StartTraffic(t, 200, base)
	app := runningApp(t)
	driveRollouts(t, app, 2)
	started := startRollout(t, store, "pool:green", []float64{10, 50, 100}, "300ms")

	r := waitRollout(t, store, "the rollout to end", func(r rollout.Rollout) bool { return !r.State.Active() })
	if r.State != rollout.Done || r.Step != 2 {
		t.Fatalf("rollout %s at step %d: %s; want done after step 3", r.State, r.Step+1, r.Message)
	}
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if w := doc.Config.Weights; w["green"] != 100 || w["blue"] != 0 {
		t.Errorf("weights %v after the rollout, want green 100", w)
	}

	// One version per step, written by the rollout, in order: two drivers
	// ran, one drove.
	metas, err := store.History(t.Context(), "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(metas) - 1; i >= 0; i-- {
		if m := metas[i]; m.Source != configstore.SourceBootstrap {
			got = append(got, fmt.Sprintf("%s %s", m.Source, m.Reason))
		}
	}
	want := []string{
		fmt.Sprintf("%s rollout %s step 1/3: pool green 10%% (test)", configstore.SourceRollout, started.ID),
		fmt.Sprintf("%s rollout %s step 2/3: pool green 50%% (test)", configstore.SourceRollout, started.ID),
		fmt.Sprintf("%s rollout %s step 3/3: pool green 100%% (test)", configstore.SourceRollout, started.ID),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	evs := waitEvents(t, store, 4)
	var kinds []string
	for i := len(evs) - 1; i >= 0; i-- {
		kinds = append(kinds, evs[i].Kind)
	}
	if got, want := strings.Join(kinds, ","), "rollout_step,rollout_step,rollout_step,rollout_done"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	load.Stop()
	if n := load.Failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the rollout (first error %q)", n, load.Sent.Load(), load.FirstError())
	}
}

func TestRolloutAbortsOnBreach(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 100 green 0
`+testGuard)
	testharness.StartTraffic(t, 200, base)
	app := runningApp(t)
	driveRollouts(t, app, 1)
	startRollout(t, store, "pool:green", []float64{10, 50, 100}, "1m")
	waitRollout(t, store, "the first step", func(r rollout.Rollout) bool { return r.Step == 0 })

	testharness.SetFault(t, ups.Green.URL, `{"error_rate": 1}`)
	r := waitRollout(t, store, "the rollout to abort", func(r rollout.Rollout) bool { return r.State == rollout.Aborted })
	// Whoever acted first, the guard (a fallback) or the rollout (a
	// rollback), the message gives the guard's figures.
	if !strings.Contains(r.Message, "error rate") || !strings.Contains(r.Message, "step 1/3 (pool green 10%)") {
		t.Errorf("abort message %q does not say why", r.Message)
	}
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if w := doc.Config.Weights; w["green"] != 0 || w["blue"] != 100 {
		t.Errorf("weights %v after the abort, want green back to 0", w)
	}
	if doc.Meta.Source != configstore.SourceGuard && doc.Meta.Source != configstore.SourceRollout {
		t.Errorf("last version by %s (%s), want the guard or the rollout", doc.Meta.Source, doc.Meta.Reason)
	}
	testharness.WaitFor(t, "a rollout_aborted event", func() bool {
		evs, _ := store.Events(t.Context(), "checkout", 10)
		for _, ev := range evs {
			if ev.Kind == rollout.EventAborted && ev.Subject == "pool:green" && ev.Reason == r.Message {
				return true
			}
		}
		return false
	})
	// Nothing moves afterwards: the rollout stays aborted at green 0%.
	noActionAfter(t, app, store, doc.Meta.Version)
}

// TestRolloutRollsBack has the guard cooling down after an earlier
// fallback, so it reports green's breach without acting on it: the rollout
// rolls green back itself.
func TestRolloutRollsBack(t *testing.T) {
	ups, base, store := guardedGateway(t, `
		weights blue 100 green 0
		guard {
			error_rate 5%
			window 2s
			min_requests 20
			baseline 2x
			cooldown 1m
		}`)
	testharness.StartTraffic(t, 200, base)
	app := runningApp(t)
	app.noteGuardWrite("checkout", time.Now())
	driveRollouts(t, app, 1)
	started := startRollout(t, store, "pool:green", []float64{10, 50, 100}, "1m")
	waitRollout(t, store, "the first step", func(r rollout.Rollout) bool { return r.Step == 0 })

	testharness.SetFault(t, ups.Green.URL, `{"error_rate": 1}`)
	r := waitRollout(t, store, "the rollout to abort", func(r rollout.Rollout) bool { return r.State == rollout.Aborted })
	if !strings.Contains(r.Message, "pool green breached its guard: error rate") || !strings.HasSuffix(r.Message, "rolled back to 0%") {
		t.Errorf("abort message %q, want the breach and the rollback", r.Message)
	}
	doc, err := store.Get(t.Context(), "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if w := doc.Config.Weights; w["green"] != 0 || w["blue"] != 100 {
		t.Errorf("weights %v after the rollback, want green back to 0", w)
	}
	if doc.Meta.Source != configstore.SourceRollout || !strings.HasPrefix(doc.Meta.Reason, "rollout "+started.ID+" aborted at step 1/3 (pool green 10%); pool green breached its guard") || r.Version != doc.Meta.Version {
		t.Errorf("last version %d by %s (%s); want the rollout's rollback, recorded as version %d", doc.Meta.Version, doc.Meta.Source, doc.Meta.Reason, r.Version)
	}
	testharness.WaitFor(t, "the gateway to serve the rollback", func() bool {
		p, v := servedPool(t, base, "probe")
		return p == "blue" && v == fmt.Sprint(doc.Meta.Version)
	})
}

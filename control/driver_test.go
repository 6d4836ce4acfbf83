package control

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/rollout"
)

var (
	healthy = guard.Population{Requests: 40}
	few     = guard.Population{Requests: 19}
	failing = guard.Population{Requests: 40, Errors: 20, ErrorRate: 50, Breach: "error rate 50.0% > 5.0%"}
)

// TestDriverAdvancesToDone ticks the driver by hand through a whole
// rollout: every hold, every step, the finish, at chosen times with
// chosen guard views.
func TestDriverAdvancesToDone(t *testing.T) {
	h := newHarness(t)
	started := h.start("pool:green", []float64{10, 50, 100}, "10m")
	leader := h.lead("gw-a")

	ticks := []struct {
		name    string
		at      time.Duration     // since t0
		seen    *guard.Population // the guard's view of green; nil: none
		viewAge time.Duration     // how old the view is at the tick
		state   rollout.State
		step    int // index of the step applied
		message string
		green   float64
		version uint64
	}{
		{"first step at once, no view needed", 0, nil, 0, rollout.Running, 0, "baking step 1/3 (pool green 10%)", 10, 2},
		{"baking", 9 * time.Minute, &healthy, 0, rollout.Running, 0, "baking step 1/3 (pool green 10%)", 10, 2},
		{"baked, no view", 10 * time.Minute, nil, 0, rollout.Running, 0, "step 1/3 (pool green 10%) baked; waiting for the guard's current view of pool green", 10, 2},
		{"baked, stale view", 10 * time.Minute, &healthy, 3 * time.Second, rollout.Running, 0, "waiting for the guard's current view of pool green", 10, 2},
		{"baked, too few samples", 10 * time.Minute, &few, 0, rollout.Running, 0, "step 1/3 (pool green 10%) baked; waiting for 20 requests of pool green in the guard's window", 10, 2},
		{"baked and healthy: step 2", 10*time.Minute + time.Second, &healthy, time.Second, rollout.Running, 1, "baking step 2/3 (pool green 50%)", 50, 3},
		{"step 3", 20*time.Minute + time.Second, &healthy, 0, rollout.Running, 2, "baking step 3/3 (pool green 100%)", 100, 4},
		{"last step baked: done", 30*time.Minute + time.Second, &healthy, 0, rollout.Done, 2, "all 3 steps baked healthy: pool green at 100%", 100, 4},
		{"a finished rollout is left alone", 2 * time.Hour, &failing, 0, rollout.Done, 2, "all 3 steps baked healthy", 100, 4},
	}
	for _, tk := range ticks {
		now := t0.Add(tk.at)
		h.setNow(now)
		if tk.seen != nil {
			h.see(*tk.seen, now.Add(-tk.viewAge))
		} else {
			h.unsee()
		}
		h.ctl.Tick(t.Context(), leader, now)
		r, doc := h.rollout(), h.doc()
		if r.State != tk.state || r.Step != tk.step || !strings.Contains(r.Message, tk.message) {
			t.Fatalf("%s: rollout %s at step index %d: %q; want %s at %d: %q", tk.name, r.State, r.Step, r.Message, tk.state, tk.step, tk.message)
		}
		if doc.Meta.Version != tk.version || doc.Config.Weights["green"] != tk.green || r.Version != tk.version {
			t.Fatalf("%s: version %d with green %v%%, rollout's version %d; want version %d with green %v%%", tk.name, doc.Meta.Version, doc.Config.Weights["green"], r.Version, tk.version, tk.green)
		}
	}

	if got, want := h.history(), []string{
		fmt.Sprintf("rollout gw-a: rollout %s step 1/3: pool green 10%% (ship it)", started.ID),
		fmt.Sprintf("rollout gw-a: rollout %s step 2/3: pool green 50%% (ship it)", started.ID),
		fmt.Sprintf("rollout gw-a: rollout %s step 3/3: pool green 100%% (ship it)", started.ID),
	}; !slices.Equal(got, want) {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var got []string
	for _, ev := range h.events() {
		got = append(got, fmt.Sprintf("%s %d %s", ev.Kind, ev.Version, ev.Instance))
	}
	if want := []string{"rollout_started 1 gw-a", "rollout_step 2 gw-a", "rollout_step 3 gw-a", "rollout_step 4 gw-a", "rollout_done 4 gw-a"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if r := h.rollout(); !r.StepStarted.Equal(t0.Add(20*time.Minute+time.Second)) || !r.Updated.Equal(t0.Add(30*time.Minute+time.Second)) {
		t.Errorf("last step started %v, rollout updated %v; want the ticks' times", r.StepStarted, r.Updated)
	}
}

func (h *harness) unsee() {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.views, "shop")
}

// TestAbort: however a rollout is aborted, by the driver on a breach or
// by an operator, the same abort records it, writes the rollback as the
// rollout, and records the event; where someone else moved the target
// first, nothing is written over it.
func TestAbort(t *testing.T) {
	tests := []struct {
		name   string
		target string
		steps  []float64
		// abort aborts the rollout after its first step, at t0+1m.
		abort   func(h *harness, leader *configstore.Leader)
		message string // the rollout's message, %s the rollout's ID
		author  string // of the rollback version; "" when none is written
		reason  string // the rollback version's reason after the rollout's ID
		value   func(configstore.Document) float64
		back    float64 // the target's value afterwards
		// When no rollback is written: the source of the last version.
		source configstore.Source
		// The deployment's version afterwards, and the rollout_aborted
		// event's: the rollback's, or the one judged (0 for an operator).
		version, eventVersion uint64
	}{
		{
			name: "breach: the driver rolls back", target: "pool:green", steps: []float64{10, 50, 100},
			abort: func(h *harness, leader *configstore.Leader) {
				h.see(failing, h.clock())
				h.ctl.Tick(h.t.Context(), leader, h.clock())
			},
			message: "at step 1/3 (pool green 10%); pool green breached its guard: error rate 50.0% > 5.0%; pool:green back to 0% (version 3)",
			author:  "gw-a", reason: "aborted at step 1/3 (pool green 10%); pool green breached its guard: error rate 50.0% > 5.0%",
			value: green, back: 0, version: 3, eventVersion: 3,
		},
		{
			name: "breach of a flag: back where it was", target: "flag:new_cart", steps: []float64{25, 50},
			abort: func(h *harness, leader *configstore.Leader) {
				h.see(failing, h.clock())
				h.ctl.Tick(h.t.Context(), leader, h.clock())
			},
			message: "at step 1/2 (flag new_cart 25%); flag new_cart breached its guard: error rate 50.0% > 5.0%; flag:new_cart back to 5% (version 3)",
			author:  "gw-a", reason: "aborted at step 1/2 (flag new_cart 25%); flag new_cart breached its guard",
			value: newCart, back: 5, version: 3, eventVersion: 3,
		},
		{
			name: "an operator aborts", target: "pool:green", steps: []float64{10, 50, 100},
			abort: func(h *harness, _ *configstore.Leader) {
				if _, err := h.ctl.Abort(h.t.Context(), Op{Deployment: "shop", Author: "bob", Reason: "p95"}); err != nil {
					h.t.Fatal(err)
				}
			},
			message: "aborted by bob: p95; pool:green back to 0% (version 3)",
			author:  "bob", reason: "aborted by bob: p95",
			value: green, back: 0, version: 3, eventVersion: 3,
		},
		{
			name: "the guard moved the target first: nothing written over it", target: "pool:green", steps: []float64{10, 50, 100},
			abort: func(h *harness, leader *configstore.Leader) {
				if _, err := h.store.Update(h.t.Context(), "shop", 2, configstore.Meta{Author: "gw-b", Source: configstore.SourceGuard, Reason: "error rate 60.0% > 5.0%; traffic to blue", Fallback: true},
					func(c *gateway.Config) error { return rollout.SetWeight(c, "green", 0, nil) }); err != nil {
					h.t.Fatal(err)
				}
				h.see(failing, h.clock())
				h.ctl.Tick(h.t.Context(), leader, h.clock())
			},
			message: "at step 1/3 (pool green 10%); the guard moved pool green from 10% to 0% (error rate 60.0% > 5.0%; traffic to blue)",
			value:   green, back: 0, source: configstore.SourceGuard, version: 3, eventVersion: 3,
		},
		{
			name: "an operator aborts after someone moved the target: left as it is", target: "pool:green", steps: []float64{10, 50, 100},
			abort: func(h *harness, _ *configstore.Leader) {
				if _, err := h.store.Update(h.t.Context(), "shop", 0, configstore.Meta{Author: "carol", Source: configstore.SourceAPI},
					func(c *gateway.Config) error { return rollout.SetWeight(c, "green", 30, nil) }); err != nil {
					h.t.Fatal(err)
				}
				if _, err := h.ctl.Abort(h.t.Context(), Op{Deployment: "shop", Author: "bob"}); err != nil {
					h.t.Fatal(err)
				}
			},
			message: "aborted by bob; pool:green left as it is: changed outside the rollout since",
			value:   green, back: 30, source: configstore.SourceAPI, version: 3, eventVersion: 0,
		},
		{
			name: "an operator aborts after the driver wrote a step it could not record: rolled back", target: "pool:green", steps: []float64{10, 50, 100},
			abort: func(h *harness, _ *configstore.Leader) {
				r := h.rollout()
				if _, err := h.store.Update(h.t.Context(), "shop", 0, configstore.Meta{Author: "gw-a", Source: configstore.SourceRollout, Reason: rollout.StepReason(r, 1)},
					func(c *gateway.Config) error { return rollout.SetWeight(c, "green", 50, r.Before) }); err != nil {
					h.t.Fatal(err)
				}
				if _, err := h.ctl.Abort(h.t.Context(), Op{Deployment: "shop", Author: "bob"}); err != nil {
					h.t.Fatal(err)
				}
			},
			message: "aborted by bob; pool:green back to 0% (version 4)",
			author:  "bob", reason: "aborted by bob",
			value: green, back: 0, version: 4, eventVersion: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			started := h.start(tt.target, tt.steps, "1h")
			leader := h.lead("gw-a")
			h.ctl.Tick(t.Context(), leader, t0)
			if r := h.rollout(); r.Step != 0 {
				t.Fatalf("first step not applied: %+v", r)
			}
			h.setNow(t0.Add(time.Minute))
			tt.abort(h, leader)

			r, doc := h.rollout(), h.doc()
			if r.State != rollout.Aborted || r.Message != tt.message {
				t.Errorf("rollout %s: %q\nwant aborted: %q", r.State, r.Message, tt.message)
			}
			if got := tt.value(doc); got != tt.back {
				t.Errorf("%s at %v after the abort, want %v", tt.target, got, tt.back)
			}
			version, eventVersion := tt.version, tt.eventVersion
			if tt.author != "" {
				wantReason := "rollout " + started.ID + " " + tt.reason
				if doc.Meta.Version != version || doc.Meta.Source != configstore.SourceRollout || doc.Meta.Author != tt.author ||
					!doc.Meta.Fallback || !strings.HasPrefix(doc.Meta.Reason, wantReason) || r.Version != version {
					t.Errorf("rollback version %d by %s %s (fallback %v): %q, rollout's version %d\nwant version %d by rollout %s: %q",
						doc.Meta.Version, doc.Meta.Source, doc.Meta.Author, doc.Meta.Fallback, doc.Meta.Reason, r.Version, version, tt.author, wantReason)
				}
			} else if doc.Meta.Version != version || doc.Meta.Source != tt.source {
				t.Errorf("version %d by %s, want %d by %s: nothing written over it", doc.Meta.Version, doc.Meta.Source, version, tt.source)
			}
			evs := h.events()
			if last := evs[len(evs)-1]; last.Kind != rollout.EventAborted || last.Version != eventVersion || last.Reason != r.Message || last.Subject != tt.target {
				t.Errorf("last event %+v, want rollout_aborted at version %d saying %q", last, eventVersion, r.Message)
			}

			// Nothing moves afterwards.
			h.see(failing, t0.Add(2*time.Hour))
			h.ctl.Tick(t.Context(), leader, t0.Add(2*time.Hour))
			if after := h.doc(); after.Meta.Version != doc.Meta.Version {
				t.Errorf("version %d after the abort, want %d", after.Meta.Version, doc.Meta.Version)
			}
		})
	}
}

func green(d configstore.Document) float64   { return d.Config.Weights["green"] }
func newCart(d configstore.Document) float64 { return d.Config.Flags["new_cart"].Percent }

// TestDriverFenced: a driver deposed without noticing (its leadership
// ended, another instance elected) writes nothing, neither a step's
// version nor an abort's record; the new leader's writes land.
func TestDriverFenced(t *testing.T) {
	h := newHarness(t)
	h.start("pool:green", []float64{10, 50, 100}, "1h")
	first := h.lead("gw-a")

	// gw-b campaigns and waits; gw-a's leadership ends (here by a resign
	// its driver's tick does not see), and gw-b is elected.
	type elected struct {
		leader *configstore.Leader
		err    error
	}
	second := make(chan elected, 1)
	go func() {
		l, err := h.store.Lead(t.Context(), Role, "gw-b", configstore.LeaseTTL(time.Second))
		second <- elected{l, err}
	}()
	first.Resign()
	e := <-second
	if e.err != nil {
		t.Fatal(e.err)
	}
	next := e.leader
	t.Cleanup(next.Resign)

	h.ctl.Tick(t.Context(), first, t0)
	if doc, r := h.doc(), h.rollout(); doc.Meta.Version != 1 || r.Step != -1 {
		t.Fatalf("deposed driver: version %d, rollout at step index %d; want version 1, no step", doc.Meta.Version, r.Step)
	}
	// The same write, fenced directly: the store says why.
	_, err := h.store.Update(t.Context(), "shop", 1, configstore.Meta{Author: "gw-a", Source: configstore.SourceRollout, Reason: "step"},
		func(c *gateway.Config) error { return rollout.SetWeight(c, "green", 10, nil) }, configstore.Fence(first))
	if !errors.Is(err, configstore.ErrNotLeader) {
		t.Errorf("deposed driver's write = %v, want ErrNotLeader", err)
	}

	h.ctl.Tick(t.Context(), next, t0)
	if doc, r := h.doc(), h.rollout(); doc.Meta.Version != 2 || r.Step != 0 {
		t.Fatalf("new driver: version %d, rollout at step index %d; want version 2, step 1 applied", doc.Meta.Version, r.Step)
	}

	// A breach the deposed driver sees aborts nothing.
	h.see(failing, t0.Add(time.Minute))
	h.ctl.Tick(t.Context(), first, t0.Add(time.Minute))
	if doc, r := h.doc(), h.rollout(); doc.Meta.Version != 2 || r.State != rollout.Running {
		t.Errorf("deposed driver on a breach: version %d, rollout %s; want version 2, running", doc.Meta.Version, r.State)
	}
	var kinds []string
	for _, ev := range h.events() {
		kinds = append(kinds, ev.Kind)
	}
	if want := []string{rollout.EventStarted, rollout.EventStep}; !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}
}

// TestHealth: the driver knows the target's health only from a guard
// view that is recent and judged the current version or a later one.
func TestHealth(t *testing.T) {
	h := newHarness(t)
	r := h.start("pool:green", []float64{10}, "1m")
	flag := r
	flag.Target = "flag:new_cart"
	doc := h.doc() // version 1, min_requests 20
	now := t0.Add(time.Hour)
	view := func(version uint64, age time.Duration) *guard.View {
		return &guard.View{Version: version, Updated: now.Add(-age),
			Pools: map[string]guard.Population{"green": failing},
			Flags: map[string]guard.Cohorts[guard.Population]{"new_cart": {On: few, Off: healthy}}}
	}
	tests := []struct {
		name string
		r    rollout.Rollout
		view *guard.View
		want rollout.Health
	}{
		{"no view", r, nil, rollout.Health{MinSamples: 20}},
		{"pool, current", r, view(1, 0), rollout.Health{Breach: failing.Breach, Samples: 40, MinSamples: 20, Known: true}},
		{"pool, a later version", r, view(2, 0), rollout.Health{Breach: failing.Breach, Samples: 40, MinSamples: 20, Known: true}},
		{"pool, 2s old", r, view(1, 2*time.Second), rollout.Health{Breach: failing.Breach, Samples: 40, MinSamples: 20, Known: true}},
		{"pool, too old", r, view(1, 2*time.Second+time.Millisecond), rollout.Health{Breach: failing.Breach, Samples: 40, MinSamples: 20}},
		{"pool, an older version", r, view(0, 0), rollout.Health{Breach: failing.Breach, Samples: 40, MinSamples: 20}},
		{"flag: its on cohort", flag, view(1, 0), rollout.Health{Samples: 19, MinSamples: 20, Known: true}},
		{"pool not in the view", rollout.Rollout{Deployment: "shop", Target: "pool:purple"}, view(1, 0), rollout.Health{MinSamples: 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.mu.Lock()
			if tt.view != nil {
				h.views["shop"] = *tt.view
			} else {
				delete(h.views, "shop")
			}
			h.mu.Unlock()
			if got := h.ctl.health(tt.r, doc, now); got != tt.want {
				t.Errorf("health = %+v, want %+v", got, tt.want)
			}
		})
	}
}

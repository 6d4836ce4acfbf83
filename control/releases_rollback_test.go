package control

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
	"github.com/a8e2c47e/switchback/rollout"
)

// chain is one release of shop taken all the way forward: it raised flag
// new_cart 5 → 50 and created dark_mode, put v2 on green and flipped all
// traffic to it, applied a change set to services payments and search,
// and migrated database main from 1 up to its target. before keeps what
// the rollback must give back, byte for byte.
type chain struct {
	h   *harness
	sch *sqlSchemas
	ctl *Control
	rel release.Release

	before struct {
		config   gateway.Config
		services map[string]string
		schema   string
	}
}

var services = []string{"payments", "search"}

func newChain(t *testing.T, dialect migrate.Dialect, target int64) *chain {
	t.Helper()
	ctx := t.Context()
	c := &chain{h: newHarness(t), sch: newSchemas(t, dialect)}
	c.ctl = c.control(t, "gw-a")
	st := c.h.store
	// Health-checked pools, with the code each runs.
	c.update(t, func(cfg *gateway.Config) {
		cfg.Health = &gateway.Health{URI: "/health"}
		cfg.Pools["blue"] = gateway.Pool{Upstreams: cfg.Pools["blue"].Upstreams, Release: "v1"}
		cfg.Pools["green"] = gateway.Pool{Upstreams: cfg.Pools["green"].Upstreams, Release: "v0"}
	})
	for i, name := range services {
		if _, err := st.PutService(ctx, name, json.RawMessage(`{"limit": `+string(rune('1'+i))+`}`), 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI}); err != nil {
			t.Fatal(err)
		}
	}
	c.before.config = c.h.doc().Config
	c.before.services = c.serviceConfigs(t)
	c.before.schema = c.sch.dump(t)

	ship := Op{Deployment: "shop", Author: "alice", Reason: "ship v2"}
	if _, err := c.ctl.StartRelease(ctx, ship, ReleaseRequest{Name: "v2", Pool: "green", Label: "v2", Upstreams: []string{"127.0.0.1:9102"},
		Databases: map[string]release.SchemaNeed{"main": {Version: target, MinVersion: 1}}}); err != nil {
		t.Fatal(err)
	}
	c.update(t, func(cfg *gateway.Config) {
		cfg.Flags["new_cart"] = gateway.Flag{Percent: 50}
		cfg.Flags["dark_mode"] = gateway.Flag{Percent: 10}
	})
	c.update(t, func(cfg *gateway.Config) {
		cfg.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9102"}, Release: "v2"}
	})
	c.update(t, func(cfg *gateway.Config) { cfg.Weights = map[string]float64{"blue": 0, "green": 100} })
	cs, err := st.ApplyChangeSet(ctx, []configstore.ChangeSpec{
		{Service: "payments", Patch: json.RawMessage(`{"limit": 20}`)},
		{Service: "search", Patch: json.RawMessage(`{"boost": true}`)},
	}, configstore.Meta{Author: "alice", Source: configstore.SourceAPI, Reason: "v2 config"})
	if err != nil {
		t.Fatal(err)
	}
	c.sch.up(t, target)
	rel, err := c.ctl.FinishRelease(ctx, ship, "v2")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rel.After.ChangeSets, []string{cs.ID}) {
		t.Fatalf("the release recorded change sets %v, want %s", rel.After.ChangeSets, cs.ID)
	}
	c.rel = rel
	return c
}

// control builds a Control of instance that knows the databases and sees
// every pool passing its health checks now.
func (c *chain) control(t *testing.T, instance string) *Control {
	t.Helper()
	ctl, err := New(Options{Store: c.h.store, Instance: instance, Now: c.h.clock, Schemas: c.sch,
		GuardView: func(name string) (guard.View, bool) {
			now := c.h.clock()
			ok := guard.PoolHealth{Healthy: true, Checked: now, LastHealthy: now}
			return guard.View{Deployment: name, Instance: instance, Updated: now, Health: map[string]guard.PoolHealth{"blue": ok, "green": ok}}, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

func (c *chain) update(t *testing.T, edit func(*gateway.Config)) {
	t.Helper()
	if _, err := c.h.store.Update(t.Context(), "shop", 0, configstore.Meta{Author: "alice", Source: configstore.SourceAPI},
		func(cfg *gateway.Config) error { edit(cfg); return nil }); err != nil {
		t.Fatal(err)
	}
}

func (c *chain) serviceConfigs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range services {
		sd, err := c.h.store.GetService(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(sd.Config)
	}
	return out
}

func (c *chain) release(t *testing.T) release.Release {
	t.Helper()
	r, _, err := c.h.store.GetRelease(t.Context(), c.rel.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkBack fails unless the deployment's content, the services'
// configurations and main's schema are what they were before the release.
func (c *chain) checkBack(t *testing.T) {
	t.Helper()
	got, want := c.h.doc().Config, c.before.config
	got.Version, want.Version = 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deployment after the rollback:\n%+v\nwant as before the release:\n%+v", got, want)
	}
	if got, want := c.serviceConfigs(t), c.before.services; !reflect.DeepEqual(got, want) {
		t.Errorf("services after the rollback %v, want %v", got, want)
	}
	if got, want := c.sch.dump(t), c.before.schema; got != want {
		t.Errorf("schema after the rollback:\n%s\nwant as before the release:\n%s", got, want)
	}
}

func forEachDatabase(t *testing.T, fn func(t *testing.T, dialect migrate.Dialect)) {
	for _, d := range []migrate.Dialect{migrate.SQLite, migrate.Postgres} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

var oncall = Op{Author: "oncall", Reason: "checkout errors"}

func TestReleaseRollbackForwardAndBack(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, dialect migrate.Dialect) {
		c := newChain(t, dialect, 2)
		ctx := t.Context()

		// The migration the release applied is on its timeline.
		tl, err := c.ctl.ReleaseTimeline(ctx, c.rel)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(tl, func(e TimelineEntry) bool {
			return e.Kind == TimelineMigration && e.Database == "main" && e.Migration == 2 && strings.Contains(e.Summary, "00002_orders_note.sql")
		}) {
			t.Errorf("the timeline lists no migration 2 of main: %+v", tl)
		}

		plan, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{Plan: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range plan.Steps {
			if s.Status != release.StepPending || s.Plan == "" {
				t.Errorf("planned %s step: %q %q, want pending with a plan", s.Kind, s.Status, s.Plan)
			}
		}
		if got := c.release(t).Status; got != release.Finished {
			t.Fatalf("after a plan the release is %s, want it unchanged (finished)", got)
		}

		// The bad release's writes, which the data snapshot taken before
		// its migration undoes.
		if _, err := c.sch.dbs["main"].db.ExecContext(ctx, "UPDATE orders SET total = 0, note = 'bad'"); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if _, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{RestoreData: true}); err != nil {
			t.Fatal(err)
		}
		if got := c.release(t).Status; got != release.RollingBack {
			t.Fatalf("after the request the release is %s, want rolling_back", got)
		}
		c.ctl.Tick(ctx, c.h.lead("gw-a"), c.h.clock())

		r := c.release(t)
		if r.Status != release.RolledBack {
			t.Fatalf("release %s; steps %+v", r.Status, r.Rollback.Steps)
		}
		t.Logf("from the request to every part back (flags, traffic, two services, schema down, data restored): %s", time.Since(began))
		for i, s := range r.Rollback.Steps {
			if s.Kind != release.StepOrder[i] || s.Status != release.StepDone || s.Started.IsZero() || s.Finished.IsZero() || s.Result == "" {
				t.Errorf("step %d: %s %s (%s → %s) %q; want %s done, timed, with a result", i+1, s.Kind, s.Status, s.Started, s.Finished, s.Result, release.StepOrder[i])
			}
		}
		c.checkBack(t)
		if got := c.sch.totals(t); got != "1:100 2:250" {
			t.Errorf("orders after the rollback with --restore-data: %s, want the totals from before the release, 1:100 2:250", got)
		}

		again, err := c.ctl.RequestRollback(ctx, oncall, r.ID, RollbackOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(again.NoOp, "rolled back already") {
			t.Errorf("second rollback says %q, want that it was rolled back already", again.NoOp)
		}
	})
}

func TestReleaseRollbackContractRefusesTheSchemaStep(t *testing.T) {
	c := newChain(t, migrate.SQLite, 3)
	ctx := t.Context()
	plan, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{Plan: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := plan.Steps[3]; !strings.Contains(s.Plan, "will be refused") || !strings.Contains(s.Plan, "00003_orders_drop_total.sql") {
		t.Errorf("schema step planned as %q, want it to say it will be refused, naming the contract", s.Plan)
	}

	// Unforced, the gate stops traffic going back to blue's v1, which
	// needs the column the contract dropped.
	if _, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	leader := c.h.lead("gw-a")
	c.ctl.Tick(ctx, leader, c.h.clock())
	r := c.release(t)
	if r.Status != release.RollbackFailed {
		t.Fatalf("release %s, want rollback_failed", r.Status)
	}
	traffic := r.Rollback.Steps[1]
	for _, want := range []string{"compatibility gate", "pool blue", "00003_orders_drop_total.sql", "--force"} {
		if traffic.Status != release.StepFailed || !strings.Contains(traffic.Result, want) {
			t.Errorf("traffic step %s: %q; want failed, saying %q", traffic.Status, traffic.Result, want)
		}
	}
	if w := c.h.doc().Config.Weights; w["green"] != 100 {
		t.Errorf("weights %v after the refusal, want traffic left on green", w)
	}

	// Forced, traffic goes back (recorded), and the schema step is still
	// refused: no force rolls a contract down.
	if _, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	c.ctl.Tick(ctx, leader, c.h.clock())
	r = c.release(t)
	if r.Status != release.RollbackFailed {
		t.Fatalf("forced rollback: release %s, want rollback_failed at the schema step", r.Status)
	}
	if s := r.Rollback.Steps[1]; s.Status != release.StepDone || !strings.Contains(s.Result, "forced past the compatibility gate") {
		t.Errorf("forced traffic step %s: %q, want done and the override recorded", s.Status, s.Result)
	}
	if reason := c.h.doc().Meta.Reason; !strings.Contains(reason, "forced past the compatibility gate") {
		t.Errorf("the traffic version's reason %q does not record the override", reason)
	}
	schema := r.Rollback.Steps[3]
	for _, want := range []string{"00003_orders_drop_total.sql", "contract", "snapshot restore 3"} {
		if schema.Status != release.StepFailed || !strings.Contains(schema.Result, want) {
			t.Errorf("schema step %s: %q; want failed, saying %q", schema.Status, schema.Result, want)
		}
	}
	if v, _ := c.sch.Version(ctx, "main"); v != 3 {
		t.Errorf("main at version %d after the refusal, want 3 (nothing changed)", v)
	}
}

func TestCompatibilityGateRefusesAFlipBack(t *testing.T) {
	c := newChain(t, migrate.SQLite, 3)
	ctx := t.Context()
	cur := c.h.doc()
	back := cur.Config.Clone()
	back.Weights = map[string]float64{"blue": 100, "green": 0}
	e := c.ctl.CheckTraffic(ctx, "shop", cur.Config, back)
	if e == nil {
		t.Fatal("the gate let traffic back onto v1 after the contract")
	}
	if e.Pool != "blue" || e.Contract.File != "00003_orders_drop_total.sql" || e.Need != 1 {
		t.Errorf("refusal %+v, want pool blue, needing main at 1, contract 00003", e)
	}
	if e := c.ctl.CheckTraffic(ctx, "shop", back, cur.Config); e != nil {
		t.Errorf("the gate refused traffic onto v2, which needs the contracted schema: %v", e)
	}

	// The guard's fallback onto blue is refused too, and recorded.
	_, err := c.ctl.FallBack(ctx, "shop", guard.Action{Kind: guard.Fallback, Subject: "pool:green", Name: "green", Target: "blue",
		Reason: "pool green error rate 40%", Version: cur.Meta.Version})
	if err == nil || !strings.Contains(err.Error(), "compatibility gate") && !strings.Contains(err.Error(), "00003_orders_drop_total.sql") {
		t.Errorf("fallback onto blue: %v, want the gate's refusal", err)
	}
	if got := c.h.doc().Meta.Version; got != cur.Meta.Version {
		t.Errorf("the refused fallback wrote version %d", got)
	}
	evs := c.h.events()
	if last := evs[len(evs)-1]; last.Kind != EventFallbackRefused || !strings.Contains(last.Reason, "00003_orders_drop_total.sql") {
		t.Errorf("last event %s %q, want fallback_refused naming the contract", last.Kind, last.Reason)
	}
	// The refusal starts the guard's cooldown, so the guard does not ask
	// (and the gate read, and an event be written) on every slot.
	if got := c.ctl.LastFallback("shop"); !got.Equal(c.h.clock()) {
		t.Errorf("cooldown from %v after the refusal, want its time %v", got, c.h.clock())
	}
}

func TestCompatibilityGateAbortsARolloutBack(t *testing.T) {
	c := newChain(t, migrate.SQLite, 3)
	ctx := t.Context()
	if _, err := c.ctl.Start(ctx, Op{Deployment: "shop", Author: "alice"}, rollout.Request{Target: "pool:blue", Steps: []float64{10, 100}, Bake: "1m"}); err != nil {
		t.Fatal(err)
	}
	before := c.h.doc().Meta.Version
	c.ctl.Tick(ctx, c.h.lead("gw-a"), c.h.clock())
	r, _, err := c.ctl.Rollout(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != rollout.Aborted || !strings.Contains(r.Message, "compatibility gate") || !strings.Contains(r.Message, "00003_orders_drop_total.sql") {
		t.Errorf("rollout %s: %q; want it aborted by the gate, naming the contract", r.State, r.Message)
	}
	if got := c.h.doc().Config.Weights; got["blue"] != 0 {
		t.Errorf("weights %v (from version %d), want no traffic onto blue", got, before)
	}
}

func TestReleaseRollbackResumesOnAnotherInstance(t *testing.T) {
	c := newChain(t, migrate.SQLite, 2)
	ctx := t.Context()
	if _, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	// gw-a drives two steps, then stops driving (as if killed).
	leaderA, err := c.h.store.Lead(ctx, Role, "gw-a", configstore.LeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if more, err := c.ctl.RollbackStep(ctx, leaderA, c.rel.ID); err != nil || !more {
			t.Fatalf("step: more %v, %v", more, err)
		}
	}
	// gw-a records step 3 started, and dies before it finishes it.
	mid, rev, err := c.h.store.GetRelease(ctx, c.rel.ID)
	if err != nil {
		t.Fatal(err)
	}
	mid.Rollback.Steps[2].Started = c.h.clock()
	if _, err := c.h.store.PutRelease(ctx, mid, rev, configstore.Fence(leaderA)); err != nil {
		t.Fatal(err)
	}
	leaderA.Resign()
	if got := []string{mid.Rollback.Steps[0].Status, mid.Rollback.Steps[1].Status, mid.Rollback.Steps[2].Status}; !reflect.DeepEqual(got, []string{"done", "done", "pending"}) {
		t.Fatalf("after gw-a: steps %v, want done, done, pending", got)
	}
	// A step gw-a wrote nothing for can no longer be written by it.
	if _, err := c.ctl.RollbackStep(ctx, leaderA, c.rel.ID); !errors.Is(err, configstore.ErrNotLeader) {
		t.Errorf("a deposed driver's step: %v, want ErrNotLeader", err)
	}

	b := c.control(t, "gw-b")
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.Run(runCtx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	testharness.Eventually(t, testharness.Wait, func() (bool, string) {
		r := c.release(t)
		return r.Status == release.RolledBack, "release " + string(r.Status)
	})
	r := c.release(t)
	for i := range 2 {
		if !reflect.DeepEqual(r.Rollback.Steps[i], mid.Rollback.Steps[i]) {
			t.Errorf("step %d ran again: %+v, was %+v", i+1, r.Rollback.Steps[i], mid.Rollback.Steps[i])
		}
	}
	if s := r.Rollback.Steps[2]; s.Status != release.StepDone || !s.Started.Equal(mid.Rollback.Steps[2].Started) {
		t.Errorf("step 3 %s, started %s; want it run again to done, keeping when it first started (%s)", s.Status, s.Started, mid.Rollback.Steps[2].Started)
	}
	c.checkBack(t)
	var byB int
	for _, ev := range c.h.events() {
		if ev.Kind == EventReleaseRollbackStep && ev.Instance == "gw-b" {
			byB++
		}
	}
	if byB != 2 {
		t.Errorf("gw-b recorded %d steps, want the last 2", byB)
	}
}

func TestReleaseRollbackWaitsForAHealthyTarget(t *testing.T) {
	c := newChain(t, migrate.SQLite, 2)
	ctx := t.Context()
	sick, err := New(Options{Store: c.h.store, Instance: "gw-a", Now: c.h.clock, Schemas: c.sch,
		GuardView: func(name string) (guard.View, bool) {
			now := c.h.clock()
			return guard.View{Deployment: name, Updated: now, Health: map[string]guard.PoolHealth{
				"blue": {Healthy: false, Checked: now, LastHealthy: now.Add(-time.Hour), Error: "127.0.0.1:9001: connection refused"}}}, true
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sick.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	leader := c.h.lead("gw-a")
	sick.Tick(ctx, leader, c.h.clock())
	r := c.release(t)
	if s := r.Rollback.Steps[1]; r.Status != release.RollbackFailed || s.Status != release.StepFailed ||
		!strings.Contains(s.Result, "pool blue") || !strings.Contains(s.Result, "connection refused") {
		t.Fatalf("release %s, traffic step %s %q; want it failed on blue's health", r.Status, s.Status, s.Result)
	}
	if s := r.Rollback.Steps[0]; s.Status != release.StepDone {
		t.Errorf("flags step %s, want done before the traffic step", s.Status)
	}
	// Once blue is healthy, asking again finishes the rest.
	if _, err := c.ctl.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	c.ctl.Tick(ctx, leader, c.h.clock())
	r = c.release(t)
	if r.Status != release.RolledBack || r.Rollback.Steps[0].Status != release.StepSkipped {
		t.Fatalf("second rollback: release %s, flags step %s; want rolled back, the flags skipped (back already)", r.Status, r.Rollback.Steps[0].Status)
	}
	c.checkBack(t)
}

// TestReleaseRollbackWaitsForHealthResults: a driver with no health
// result for the pool taking traffic back (just elected, just reloaded)
// tries the step again rather than failing the rollback, for three check
// intervals after the step started, then fails it saying why.
func TestReleaseRollbackWaitsForHealthResults(t *testing.T) {
	c := newChain(t, migrate.SQLite, 2)
	ctx := t.Context()
	blind, err := New(Options{Store: c.h.store, Instance: "gw-a", Now: c.h.clock, Schemas: c.sch,
		GuardView: func(name string) (guard.View, bool) { return guard.View{}, false }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blind.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); err != nil {
		t.Fatal(err)
	}
	leader := c.h.lead("gw-a")
	blind.Tick(ctx, leader, c.h.clock())
	r := c.release(t)
	if s := r.Rollback.Steps[1]; r.Status != release.RollingBack || s.Status != release.StepPending || s.Started.IsZero() {
		t.Fatalf("with no health result yet: release %s, traffic step %s (started %v); want it still rolling back, the step started and pending", r.Status, s.Status, s.Started)
	}
	c.h.setNow(c.h.clock().Add(time.Hour)) // far past three intervals
	blind.Tick(ctx, leader, c.h.clock())
	r = c.release(t)
	if s := r.Rollback.Steps[1]; r.Status != release.RollbackFailed || !strings.Contains(s.Result, "no health check result") {
		t.Fatalf("after the patience: release %s, traffic step %s %q; want it failed for lack of health results", r.Status, s.Status, s.Result)
	}
}

func TestReleaseRollbackRefusals(t *testing.T) {
	c := newChain(t, migrate.SQLite, 2)
	ctx := t.Context()
	if _, err := c.ctl.RequestRollback(ctx, oncall, "v9", RollbackOptions{}); !errors.Is(err, configstore.ErrNotFound) {
		t.Errorf("unknown release: %v, want not found", err)
	}
	// A release open with nothing done yet has nothing to undo.
	open, err := c.ctl.StartRelease(ctx, Op{Deployment: "shop", Author: "alice"}, ReleaseRequest{Name: "v3", Pool: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ctl.RequestRollback(ctx, oncall, open.ID, RollbackOptions{}); !errors.Is(err, ErrNothingToUndo) {
		t.Errorf("open release with nothing done: %v, want ErrNothingToUndo", err)
	}
	// Without the database configured, a release that needs it is refused.
	noDB, err := New(Options{Store: c.h.store, Instance: "gw-a", Now: c.h.clock})
	if err != nil {
		t.Fatal(err)
	}
	var fe *gateway.FieldError
	if _, err := noDB.RequestRollback(ctx, oncall, "v2", RollbackOptions{}); !errors.As(err, &fe) || fe.Field != "databases" || !strings.Contains(fe.Error(), `"main"`) {
		t.Errorf("database not configured: %v, want a field error naming main", err)
	}
	if got := c.release(t).Status; got != release.Finished {
		t.Errorf("after the refusals the release is %s, want finished", got)
	}
}

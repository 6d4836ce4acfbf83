package e2e

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/migrate"
	"github.com/a8e2c47e/switchback/release"
)

// TestReleaseRollbackSurvivesItsDriverKilled: the instance driving a
// rollback is killed (SIGKILL) while it rolls the schema down; another
// instance takes over after the dead one's lease expires and finishes
// from the step that had started, leaving every step done once and
// everything as before the release.
func TestReleaseRollbackSurvivesItsDriverKilled(t *testing.T) {
	forEachReleaseDatabase(t, func(t *testing.T, dialect migrate.Dialect) {
		c := newReleaseChain(t, dialect, 3, true)
		c.forward(t)
		c.sb(t, "release", "rollback", "v2", "--reason", "checkout errors")

		// The schema step is recorded as started before its down runs,
		// which its slow statement makes last seconds.
		var mid release.Release
		testharness.Eventually(t, testharness.Wait, func() (bool, string) {
			mid = c.release(t)
			if mid.Rollback == nil {
				return false, "no rollback recorded"
			}
			s := mid.Rollback.Steps[3]
			return s.Kind == release.StepSchema && !s.Started.IsZero() && s.Finished.IsZero(), fmt.Sprintf("steps %+v", mid.Rollback.Steps)
		})
		driver := c.stepDrivers(t)[release.StepConfig]
		var killed *gateway
		for _, g := range c.gws {
			if g.name == driver {
				killed = g
			}
		}
		if killed == nil {
			t.Fatalf("the config step was recorded by %q, which is none of the gateways", driver)
		}
		if err := killed.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-killed.done
		if st := c.release(t).Rollback.Steps[3]; st.Status != release.StepPending {
			t.Fatalf("the schema step was %s (%q) when its driver died; the slow down was not slow enough", st.Status, st.Result)
		}
		if c.watch.gateway == killed.adminURL {
			// Its services reconnect to another instance.
			c.watch = startWatchers(t, c.live()[0].adminURL)
		}

		testharness.Eventually(t, 2*testharness.Wait, func() (bool, string) {
			r := c.release(t)
			return r.Status == release.RolledBack, fmt.Sprintf("release %s: %+v", r.Status, r.Rollback.Steps)
		})
		c.waitServed(t, "blue")
		c.watch.waitFor(t, map[string]uint64{"payments": 3, "search": 3})
		for _, d := range c.backAsBefore(t) {
			t.Error(d)
		}

		r := c.release(t)
		for i := range 3 {
			if !reflect.DeepEqual(r.Rollback.Steps[i], mid.Rollback.Steps[i]) {
				t.Errorf("step %d changed after its driver died: %+v, was %+v", i+1, r.Rollback.Steps[i], mid.Rollback.Steps[i])
			}
		}
		if s := r.Rollback.Steps[3]; s.Status != release.StepDone || !s.Started.Equal(mid.Rollback.Steps[3].Started) {
			t.Errorf("schema step %s, started %s; want it done, keeping when the dead driver started it (%s)", s.Status, s.Started, mid.Rollback.Steps[3].Started)
		}
		drivers := c.stepDrivers(t)
		for _, kind := range release.StepOrder {
			if drivers[kind] == "" {
				t.Errorf("no instance recorded step %s", kind)
			}
		}
		if got := drivers[release.StepSchema]; got == driver {
			t.Errorf("the schema step was recorded by %s, which was killed", got)
		}
		t.Logf("%s: %s killed during the schema step; %s finished it in %s", dialect, driver, drivers[release.StepSchema],
			r.Rollback.Steps[3].Finished.Sub(r.Rollback.Steps[3].Started))
	})
}

// stepDrivers maps each rollback step recorded in the events to the
// instance that recorded it, failing the test if a step is recorded twice.
func (c *releaseChain) stepDrivers(t testing.TB) map[release.StepKind]string {
	t.Helper()
	evs, err := c.e.Store(t).Events(context.Background(), "checkout", 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[release.StepKind]string{}
	for _, ev := range evs {
		if ev.Kind != control.EventReleaseRollbackStep {
			continue
		}
		for _, kind := range release.StepOrder {
			if !strings.Contains(ev.Reason, "("+string(kind)+")") {
				continue
			}
			if prev, ok := out[kind]; ok {
				t.Errorf("step %s recorded twice: by %s and by %s", kind, prev, ev.Instance)
			}
			out[kind] = ev.Instance
		}
	}
	return out
}

package e2e

import (
	"fmt"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// converged waits until every gateway serves user from pool at version.
func converged(t *testing.T, gws []*gateway, user, pool string, version uint64) {
	t.Helper()
	for _, g := range gws {
		testharness.WaitFor(t, fmt.Sprintf("%s to serve %s at version %d", g.name, pool, version), func() bool {
			p, v, err := g.served(t, user)
			return err == nil && p == pool && v == fmt.Sprint(version)
		})
	}
}

func TestInstancesConvergeOnEveryChange(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	site := deployment(b, "live blue")
	gws := []*gateway{startGateway(t, "gw-a", e, site, ""), startGateway(t, "gw-b", e, site, ""), startGateway(t, "gw-c", e, site, "")}
	converged(t, gws, "u1", "blue", 1)

	// Changes made through any instance's admin API reach all of them.
	steps := []struct {
		via  *gateway
		do   func(*admin.Client) (admin.Deployment, error)
		pool string
	}{
		{gws[0], func(c *admin.Client) (admin.Deployment, error) {
			return c.Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "ship green"})
		}, "green"},
		{gws[1], func(c *admin.Client) (admin.Deployment, error) {
			return c.Rollback(t.Context(), "checkout", admin.WriteOptions{Reason: "undo"})
		}, "blue"},
		{gws[2], func(c *admin.Client) (admin.Deployment, error) {
			return c.Restore(t.Context(), "checkout", 2, admin.WriteOptions{Reason: "green again"})
		}, "green"},
	}
	for i, st := range steps {
		d, err := st.do(st.via.admin(t))
		if err != nil {
			t.Fatalf("step %d via %s: %v", i, st.via.name, err)
		}
		converged(t, gws, "u1", st.pool, d.Version)
	}

	// Every instance reports what it applied; any admin API shows all three.
	want := uint64(len(steps) + 1)
	testharness.WaitFor(t, "all instances reported in the deployment's state", func() bool {
		d, err := gws[1].admin(t).Status(t.Context(), "checkout")
		if err != nil {
			return false
		}
		for _, g := range gws {
			if d.Instances[g.name] != want {
				return false
			}
		}
		return true
	})
}

// TestEtcdOutageUnderTraffic stops etcd while two gateways serve traffic:
// nothing fails, changes are refused with 503 meanwhile, and once etcd is
// back a change reaches both.
func TestEtcdOutageUnderTraffic(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	site := deployment(b, "live blue")
	gws := []*gateway{startGateway(t, "gw-a", e, site, ""), startGateway(t, "gw-b", e, site, "")}
	tr := testharness.StartTraffic(t, 100, bases(gws)...)

	e.Stop(t)
	var apiErr *admin.APIError
	testharness.WaitFor(t, "the admin API to report the store unavailable", func() bool {
		_, err := gws[0].admin(t).Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "during outage"})
		return asAPIError(err, &apiErr) && apiErr.Status == 503
	})
	// Traffic keeps flowing on the last applied version.
	sent := tr.Sent.Load()
	testharness.WaitFor(t, "traffic during the outage", func() bool { return tr.Sent.Load() >= sent+100 })
	for _, g := range gws {
		if p, v, err := g.served(t, "u1"); err != nil || p != "blue" || v != "1" {
			t.Errorf("%s during the outage: %s v%s %v; want blue v1", g.name, p, v, err)
		}
	}

	e.Start(t)
	d, err := flipWhenBack(t, gws[1])
	if err != nil {
		t.Fatal(err)
	}
	converged(t, gws, "u1", "green", d.Version)
	tr.Stop()
	if n := tr.Failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed across the outage; first: %v", n, tr.Sent.Load(), tr.FirstError())
	}
}

func flipWhenBack(t *testing.T, g *gateway) (admin.Deployment, error) {
	var d admin.Deployment
	var err error
	testharness.WaitFor(t, "a flip to succeed once etcd is back", func() bool {
		d, err = g.admin(t).Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "after outage"})
		return err == nil
	})
	return d, err
}

func asAPIError(err error, target **admin.APIError) bool {
	ae, ok := err.(*admin.APIError)
	if ok {
		*target = ae
	}
	return ok
}

// TestRestartDuringOutageBootsLastKnownGood restarts a gateway while etcd is
// down: it serves the version it last applied, from its state file.
func TestRestartDuringOutageBootsLastKnownGood(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	site := deployment(b, "live blue")
	stateDir := t.TempDir()
	g := startGateway(t, "gw-a", e, site, stateDir)
	d, err := g.admin(t).Flip(t.Context(), "checkout", admin.WriteOptions{Reason: "ship green"})
	if err != nil {
		t.Fatal(err)
	}
	converged(t, []*gateway{g}, "u1", "green", d.Version)
	g.stop(t)
	e.Stop(t)

	g2 := startGateway(t, "gw-a", e, site, stateDir)
	if p, v, err := g2.served(t, "u1"); err != nil || p != "green" || v != fmt.Sprint(d.Version) {
		t.Errorf("restarted during the outage: %s v%s %v; want green v%d (the last-known-good)", p, v, err, d.Version)
	}
}

// TestTwoInstancesOneFallback: both instances' guards see green fail; one
// fallback version is written, and one event.
func TestTwoInstancesOneFallback(t *testing.T) {
	e := etcdtest.Start(t)
	b := testharness.StartBackends(t)
	site := deployment(b, `weights blue 50 green 50
		guard {
			error_rate 5%
			window 2s
			min_requests 20
			baseline 2x
		}`)
	gws := []*gateway{startGateway(t, "gw-a", e, site, ""), startGateway(t, "gw-b", e, site, "")}
	testharness.StartTraffic(t, 300, bases(gws)...)
	store := e.Store(t)
	testharness.WaitFor(t, "healthy traffic judged", func() bool {
		applied, err := store.Applied(t.Context(), "checkout")
		return err == nil && len(applied) == 2
	})
	testharness.SetFault(t, b.Green.URL, `{"error_rate": 1}`)
	var doc configstore.Document
	testharness.WaitFor(t, "green off traffic", func() bool {
		var err error
		doc, err = store.Get(t.Context(), "checkout")
		return err == nil && doc.Config.Weights["green"] == 0
	})
	converged(t, gws, "u1", "blue", doc.Meta.Version)
	// Let both guards judge a few more slots, then count.
	testharness.WaitFor(t, "both instances to apply the fallback", func() bool {
		applied, err := store.Applied(t.Context(), "checkout")
		return err == nil && applied["gw-a"] == doc.Meta.Version && applied["gw-b"] == doc.Meta.Version
	})
	hist, err := store.History(t.Context(), "checkout", 0)
	if err != nil {
		t.Fatal(err)
	}
	var guardVersions int
	for _, m := range hist {
		if m.Source == configstore.SourceGuard {
			guardVersions++
		}
	}
	// The winner records its event just after its version.
	var evs []configstore.Event
	testharness.WaitFor(t, "the fallback event", func() bool {
		var err error
		evs, err = store.Events(t.Context(), "checkout", 0)
		return err == nil && len(evs) > 0
	})
	var fallbacks int
	for _, ev := range evs {
		if ev.Kind == "fallback" {
			fallbacks++
		}
	}
	if guardVersions != 1 || fallbacks != 1 {
		t.Errorf("%d guard versions and %d fallback events from two instances, want 1 and 1; history %+v", guardVersions, fallbacks, hist)
	}
}

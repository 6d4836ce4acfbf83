package control

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/criteria"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// raise sets shop's flag new_cart to pct as an operator would.
func (h *harness) raise(pct float64) configstore.Document {
	h.t.Helper()
	doc := h.doc()
	res, err := h.store.Update(h.t.Context(), "shop", doc.Meta.Version, configstore.Meta{Author: "alice", Source: configstore.SourceAPI, Reason: "ramp"},
		func(c *gateway.Config) error {
			c.Flags["new_cart"] = gateway.Flag{Percent: pct}
			return nil
		})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Doc
}

func TestRecentChange(t *testing.T) {
	h := newHarness(t)
	since := t0.Add(-time.Minute)
	if ch, err := h.ctl.RecentChange(t.Context(), "shop", since); err != nil || ch != nil {
		t.Fatalf("after the bootstrap: %+v, %v; want no change", ch, err)
	}
	raised := h.raise(50)
	ch, err := h.ctl.RecentChange(t.Context(), "shop", since)
	if err != nil {
		t.Fatal(err)
	}
	if ch == nil || ch.Version != raised.Meta.Version || ch.Flags["new_cart"] != 5 {
		t.Fatalf("change %+v; want v%d raising new_cart from 5%%", ch, raised.Meta.Version)
	}
	if ch, _ := h.ctl.RecentChange(t.Context(), "shop", raised.Meta.Time.Add(time.Millisecond)); ch != nil {
		t.Errorf("since after the raise: change %+v; want none", ch)
	}

	// The guard rolls it back: the change is not blamed again.
	res, err := h.ctl.FallBack(t.Context(), "shop", guard.Action{Kind: guard.Revert, Subject: "criterion:db", Name: "db",
		Change: ch, Version: raised.Meta.Version, Reason: "criterion db: 95% > 90%; rolling back"})
	if err != nil || !res.Wrote {
		t.Fatalf("revert: %+v, %v", res, err)
	}
	if got := res.Doc.Config.Flags["new_cart"].Percent; got != 5 {
		t.Errorf("after the revert new_cart is at %g%%, want 5%%", got)
	}
	if ch, err := h.ctl.RecentChange(t.Context(), "shop", since); err != nil || ch != nil {
		t.Errorf("after the guard's version: %+v, %v; want no change to blame", ch, err)
	}
	evs := h.events()
	if len(evs) != 1 || evs[0].Kind != EventCriterionRollback || evs[0].Subject != "criterion:db" {
		t.Errorf("events %+v; want one criterion_rollback", evs)
	}
}

// TestCriteriaProbeOnlyWhileLeading: the elected instance probes and
// blames the newest change; an instance off the lead keeps nothing.
func TestCriteriaProbeOnlyWhileLeading(t *testing.T) {
	h := newHarness(t)
	var hits atomic.Int64
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(health.Close)
	c := gateway.Criterion{Name: "payments", Kind: gateway.CriterionHTTP, URL: health.URL + "/health", Status: 200, Interval: gateway.Duration(time.Second)}
	doc := h.doc()
	_, err := h.store.Update(t.Context(), "shop", doc.Meta.Version, configstore.Meta{Author: "alice", Source: configstore.SourceAPI, Reason: "criteria"},
		func(cfg *gateway.Config) error {
			cfg.Guard.Criteria = []gateway.Criterion{c}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	raised := h.raise(40)
	snap, err := gateway.Compile(raised.Config)
	if err != nil {
		t.Fatal(err)
	}
	k := h.ctl.Criteria(&criteria.Prober{Client: health.Client()})

	k.Tick(t.Context(), []*gateway.Snapshot{snap}, t0)
	if st, _ := k.Input("shop"); st != nil || hits.Load() != 0 {
		t.Fatalf("off the lead: states %+v after %d probes; want none", st, hits.Load())
	}

	h.ctl.leading.Store(true)
	k.Tick(t.Context(), []*gateway.Snapshot{snap}, t0)
	k.Tick(t.Context(), []*gateway.Snapshot{snap}, t0.Add(500*time.Millisecond)) // not due yet
	st, ch := k.Input("shop")
	if len(st) != 1 || !st[0].Last.Breach || !strings.Contains(st[0].Last.Text, "status 503") || hits.Load() != 1 {
		t.Fatalf("leading: states %+v after %d probes; want one breach of status 503 from one probe", st, hits.Load())
	}
	if ch == nil || ch.Version != raised.Meta.Version {
		t.Fatalf("blamed %+v; want v%d", ch, raised.Meta.Version)
	}

	h.ctl.leading.Store(false)
	k.Tick(t.Context(), []*gateway.Snapshot{snap}, t0.Add(2*time.Second))
	if st, ch := k.Input("shop"); st != nil || ch != nil {
		t.Errorf("after losing the lead: %+v, %+v; want nothing", st, ch)
	}
}

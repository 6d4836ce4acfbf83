package control

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// checkedInstance is a gateway instance as far as redeploy sees one: a
// real health checker probing the pools of the version it last applied
// (its own writes, through Options.Wrote), and the guard view it reports.
type checkedInstance struct {
	checker *guard.Checker
	applied atomic.Uint64
}

func newCheckedInstance(t *testing.T, doc configstore.Document) *checkedInstance {
	t.Helper()
	in := &checkedInstance{checker: guard.NewChecker(time.Now)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { in.checker.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	in.apply(doc)
	return in
}

func (in *checkedInstance) apply(doc configstore.Document) {
	targets := map[string]guard.Target{}
	for name, p := range doc.Config.Pools {
		targets[name] = guard.Target{Upstreams: p.Upstreams}
	}
	in.checker.Set(targets, doc.Config.Health.URI, 20*time.Millisecond)
	in.applied.Store(doc.Meta.Version)
}

func (in *checkedInstance) view(name string) (guard.View, bool) {
	return guard.View{Deployment: name, Version: in.applied.Load(), Health: in.checker.All(), Updated: time.Now()}, true
}

// upstream is a real HTTP server answering its health checks with status.
func upstream(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// redeployHarness has shop's release v1 (green, upstream v1Addr) recorded
// and traffic since on blue (v2); green's upstreams are gone (replaced by
// a dead address), as when no previous environment is kept.
func redeployHarness(t *testing.T, v1Addr string) (*harness, *Control) {
	t.Helper()
	h := newHarness(t)
	ctx := t.Context()
	if _, err := h.store.Update(ctx, "shop", 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI}, func(c *gateway.Config) error {
		c.Health = &gateway.Health{URI: "/health"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ship := Op{Deployment: "shop", Author: "ci"}
	if _, err := h.ctl.StartRelease(ctx, ship, ReleaseRequest{Name: "v1", Pool: "green", Label: "v1", Upstreams: []string{v1Addr}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ctl.FinishRelease(ctx, ship, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Update(ctx, "shop", 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI}, func(c *gateway.Config) error {
		c.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:1"}, Release: "gone"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	in := newCheckedInstance(t, h.doc())
	ctl, err := New(Options{Store: h.store, Instance: "gw-a", GuardView: in.view, Wrote: in.apply})
	if err != nil {
		t.Fatal(err)
	}
	return h, ctl
}

func TestRedeployWaitsForHealthThenMovesTraffic(t *testing.T) {
	v1 := upstream(t, http.StatusOK)
	h, ctl := redeployHarness(t, v1)
	res, err := ctl.Redeploy(t.Context(), Op{Author: "oncall", Reason: "v2 broken"}, "v1", RedeployOptions{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	doc := h.doc()
	if res.Pool != "green" || doc.Config.Weights["green"] != 100 || doc.Config.Weights["blue"] != 0 {
		t.Errorf("redeployed on %s, weights %v; want green taking all traffic", res.Pool, doc.Config.Weights)
	}
	if p := doc.Config.Pools["green"]; len(p.Upstreams) != 1 || p.Upstreams[0] != v1 || p.Release != "v1" {
		t.Errorf("green runs %+v, want v1's upstream %s", p, v1)
	}
	if res.Moved.Doc.Meta.Version != res.Deployed.Doc.Meta.Version+1 || !strings.Contains(res.Health, "passed its health checks") {
		t.Errorf("deployed %d, moved %d, health %q; want the move right after the deploy, once healthy",
			res.Deployed.Doc.Meta.Version, res.Moved.Doc.Meta.Version, res.Health)
	}
	if !strings.Contains(doc.Meta.Reason, "redeploy of release v1") || !strings.Contains(doc.Meta.Reason, "v2 broken") {
		t.Errorf("reason %q, want the redeploy and why", doc.Meta.Reason)
	}
}

func TestRedeployLeavesTrafficWhenUnhealthy(t *testing.T) {
	v1 := upstream(t, http.StatusServiceUnavailable)
	h, ctl := redeployHarness(t, v1)
	_, err := ctl.Redeploy(t.Context(), Op{Author: "oncall"}, "v1", RedeployOptions{Wait: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not pass its health checks") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Redeploy onto a failing upstream: %v, want it refused, naming the failure", err)
	}
	if w := h.doc().Config.Weights; w["blue"] != 100 {
		t.Errorf("weights %v after the failed redeploy, want traffic left on blue", w)
	}
	if _, err := ctl.Redeploy(t.Context(), Op{Author: "oncall"}, "v7", RedeployOptions{}); err == nil || !strings.Contains(err.Error(), "v7") {
		t.Errorf("unknown release: %v, want an error naming it", err)
	}
}

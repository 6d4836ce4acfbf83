package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/internal/testharness/dbtest"
	"github.com/a8e2c47e/switchback/release"
)

// gatedHarness serves shop (blue v1.0.0 100%, green v1.1.0) with release
// v1.1.0 of green open, recorded as needing main at version 1, which a
// contract took to version 2 before the release started.
func gatedHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, nil)
	ctl, err := control.New(control.Options{Store: h.store, Instance: "host-a", Schemas: dbtest.Contracted(t)})
	if err != nil {
		t.Fatal(err)
	}
	h = newHarnessOn(t, h.store, func(o *Options) { o.Control = ctl })
	before := release.State{Weights: map[string]float64{"blue": 100, "green": 0}, Flags: map[string]float64{"new-cart": 10},
		Databases: map[string]int64{"main": 2}}
	if _, _, err := h.store.CreateRelease(t.Context(), release.Release{Name: "v1.1.0", Deployment: "shop", Pool: "green", Label: "v1.1.0",
		Databases: map[string]release.SchemaNeed{"main": {Version: 1, MinVersion: 1}}, Before: before}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCompatibilityGateOnFlipAndWeights(t *testing.T) {
	h := gatedHarness(t)
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/deployments/shop/flip", `{"reason": "ship"}`},
		{http.MethodPut, "/api/v1/deployments/shop/weights", `{"weights": {"blue": 90, "green": 10}}`},
	} {
		resp := h.do(req.method, req.path, req.body)
		if resp.status != http.StatusConflict {
			t.Fatalf("%s %s: %d %s, want 409", req.method, req.path, resp.status, resp.body)
		}
		e := resp.errorBody(t)
		for _, want := range []string{"compatibility gate", "release v1.1.0", "00002_drop_total.sql", "--force"} {
			if !strings.Contains(e.Error, want) {
				t.Errorf("%s: refusal %q does not say %q", req.path, e.Error, want)
			}
		}
		if v := h.current("shop").Meta.Version; v != 1 {
			t.Errorf("%s: the refusal wrote version %d", req.path, v)
		}
	}
	resp := h.do(http.MethodPost, "/api/v1/deployments/shop/flip", `{"reason": "ship", "force": true}`)
	if resp.status != http.StatusOK {
		t.Fatalf("forced flip: %d %s", resp.status, resp.body)
	}
	doc := h.current("shop")
	if doc.Config.Weights["green"] != 100 || !strings.Contains(doc.Meta.Reason, "ship; forced past the compatibility gate") {
		t.Errorf("forced flip wrote weights %v with reason %q, want green 100%% and the override recorded", doc.Config.Weights, doc.Meta.Reason)
	}
}

func TestReleaseRollbackAPIAndCLI(t *testing.T) {
	h := gatedHarness(t)
	resp := h.do(http.MethodPost, "/api/v1/releases/v1.1.0/rollback", `{"plan": true}`)
	if resp.status != http.StatusConflict || !strings.Contains(resp.errorBody(t).Error, "changed nothing yet") {
		t.Errorf("rollback of an open release with nothing done: %d %s, want 409 saying so", resp.status, resp.body)
	}
	resp = h.do(http.MethodPost, "/api/v1/releases/nope/rollback", `{}`)
	if resp.status != http.StatusNotFound || resp.errorBody(t).Field != "id" {
		t.Errorf("unknown release: %d %s, want 404 on field id", resp.status, resp.body)
	}
	if resp := h.do(http.MethodPost, "/api/v1/deployments/shop/flip", `{"force": true}`); resp.status != http.StatusOK {
		t.Fatalf("forced flip: %d %s", resp.status, resp.body)
	}

	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	code, stdout, stderr := runCLI(t, env, "release", "rollback", "v1.1.0", "--plan")
	if code != 0 || !strings.Contains(stdout, "plan for the rollback of release v1.1.0") || !strings.Contains(stdout, "traffic  pending  weights blue 0%, green 100% → blue 100%, green 0%") {
		t.Errorf("release rollback --plan: exit %d\n%s%s", code, stdout, stderr)
	}
	var got ReleaseRollback
	resp = h.do(http.MethodPost, "/api/v1/releases/v1.1.0/rollback", `{"reason": "errors"}`)
	resp.decode(t, &got)
	if resp.status != http.StatusAccepted || got.Release.Status != release.RollingBack || got.Release.Rollback.Reason != "errors" {
		t.Errorf("rollback: %d %s, want 202 and the release rolling back", resp.status, resp.body)
	}
	code, stdout, _ = runCLI(t, env, "release", "rollback", "v1.1.0")
	if code != 0 || !strings.Contains(stdout, "is being rolled back since") {
		t.Errorf("second rollback: exit %d %q, want a no-op that says so", code, stdout)
	}
	if code, _, stderr := runCLI(t, env, "release", "redeploy", "v1.1.0", "--plan"); code != 2 || !strings.Contains(stderr, "--plan and --restore-data are for release rollback") {
		t.Errorf("redeploy --plan: exit %d %q, want a usage error", code, stderr)
	}
	if last := h.audit.last(t); last.Action != "release-rollback" || last.Deployment != "shop" || last.Target != "v1.1.0" {
		t.Errorf("audit %+v, want the release rollback of shop", last)
	}
}

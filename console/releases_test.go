package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/dbtest"
	"github.com/a8e2c47e/switchback/release"
)

// TestReleasePages reads and rolls back releases through the console's
// pages on a real admin API, store and SQLite database: a finished
// release whose schema step a contract migration refuses, shown in the
// plan before anything is done, and a failed rollback whose step says
// what to do. Nothing drives rollbacks here, so a requested one stays
// rolling back.
func TestReleasePages(t *testing.T) {
	h, store := localAdminWith(t, 1, func(s *configstore.Store, o *admin.Options) {
		ctl, err := control.New(control.Options{Store: s, Instance: "host-a", Schemas: dbtest.Contracted(t)})
		if err != nil {
			t.Fatal(err)
		}
		o.Control = ctl
	})
	ctx := t.Context()
	meta := configstore.Meta{Author: "ci", Source: configstore.SourceCLI, Reason: "ship v1.1.0"}

	// v1.1.0 flipped shop to green and ran the contract.
	shipped, _, err := store.CreateRelease(ctx, release.Release{Name: "v1.1.0", Deployment: "shop", Pool: "green", Label: "v1.1.0",
		Databases: map[string]release.SchemaNeed{"main": {Version: 2, MinVersion: 2}},
		Before: release.State{DeploymentVersion: 1, Weights: map[string]float64{"blue": 100, "green": 0},
			Flags: map[string]float64{"new_cart": 10, "dark_mode": 0}, Databases: map[string]int64{"main": 1}}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := store.Update(ctx, "shop", 0, meta, func(c *gateway.Config) error {
		c.Weights = map[string]float64{"blue": 0, "green": 100}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shipped.Status, shipped.Finished = release.Finished, time.Now().UTC()
	shipped.After = &release.State{DeploymentVersion: doc.Doc.Meta.Version, Weights: map[string]float64{"blue": 0, "green": 100},
		Flags: map[string]float64{"new_cart": 10, "dark_mode": 0}, Databases: map[string]int64{"main": 2}}
	put(t, store, shipped)

	// v1.2.0's rollback failed at traffic.
	failed, _, err := store.CreateRelease(ctx, release.Release{Name: "v1.2.0", Deployment: "shop", Pool: "blue", Label: "v1.2.0",
		Before: release.State{DeploymentVersion: doc.Doc.Meta.Version, Weights: map[string]float64{"blue": 0, "green": 100}}})
	if err != nil {
		t.Fatal(err)
	}
	const fix = "pool green has not passed its health checks since 21:02; check its upstreams, then roll back again (or --force)"
	failed.Status = release.RollbackFailed
	failed.Rollback = &release.Rollback{Requested: time.Now().UTC(), By: "bob", Reason: "errors", Steps: []release.Step{
		{Kind: release.StepFlags, Status: release.StepDone, Plan: "flags back", Result: "wrote version 3",
			Started: time.Now().UTC(), Finished: time.Now().UTC().Add(12 * time.Millisecond)},
		{Kind: release.StepTraffic, Status: release.StepFailed, Plan: "weights back", Result: fix},
		{Kind: release.StepConfig, Status: release.StepPending, Plan: "no service configuration to revert"},
		{Kind: release.StepSchema, Status: release.StepPending, Plan: "no migration to roll down"},
	}}
	put(t, store, failed)

	get := func(t *testing.T, target string, want int) string {
		t.Helper()
		rec := request(h, http.MethodGet, target, loopback, nil, nil)
		if rec.Code != want {
			t.Fatalf("GET %s: status %d, want %d\n%s", target, rec.Code, want, rec.Body.String())
		}
		return rec.Body.String()
	}
	contains := func(t *testing.T, what, body string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, body)
			}
		}
	}

	t.Run("the list, newest first, statuses in words", func(t *testing.T) {
		body := get(t, "/ui/releases", http.StatusOK)
		contains(t, "the list", body, `status-rollback-failed">rollback failed<`, `status-finished">finished<`,
			`href="/ui/releases/`+failed.ID+`"`, `href="/ui/releases/`+shipped.ID+`"`)
		if strings.Index(body, failed.ID) > strings.Index(body, shipped.ID) {
			t.Error("v1.1.0 is listed before v1.2.0, which started later")
		}
		if body := get(t, "/ui/releases?deployment=nope", http.StatusOK); strings.Contains(body, shipped.ID) {
			t.Error("the list of deployment nope shows shop's releases")
		}
	})

	t.Run("a failed step says what to do, where it cannot be missed", func(t *testing.T) {
		body := get(t, "/ui/releases/"+failed.ID, http.StatusOK)
		contains(t, "the failed release", body, `<div class="failure" role="alert">`, "Step 2, Traffic back, failed", fix,
			`step-status-failed">failed<`, "Roll back this release")
	})

	t.Run("the plan shows the refused schema step before anything is done", func(t *testing.T) {
		body := get(t, "/ui/releases/"+shipped.ID+"/rollback?force=1", http.StatusOK)
		contains(t, "the plan", body, `role="dialog"`, "Nothing has been done yet", "Traffic back",
			"weights blue 0%, green 100% → blue 100%, green 0%", "Will be refused:", "00002_drop_total.sql",
			`name="force" value="1"`, "<strong>force</strong>", `required`)
		if strings.Contains(body, `name="restore_data"`) {
			t.Error("the plan carries restore_data, which was not ticked")
		}
		contains(t, "the release", get(t, "/ui/releases/"+shipped.ID, http.StatusOK), "What it changed",
			"traffic to pool green", "database main schema", "migration 1", "migration 2")
	})

	csrf := formToken(t, get(t, "/ui/releases/"+shipped.ID+"/rollback", http.StatusOK))
	post := func(form url.Values) *httptest.ResponseRecorder {
		return request(h, http.MethodPost, "/ui/releases/"+shipped.ID+"/rollback", loopback, form, nil)
	}
	t.Run("bad input is refused and changes nothing", func(t *testing.T) {
		tests := []struct {
			name string
			form url.Values
			want int
			says string
		}{
			{"no reason", url.Values{"csrf": {csrf}}, http.StatusBadRequest, "Nothing was done"},
			{"a blank reason", url.Values{"csrf": {csrf}, "reason": {"  "}}, http.StatusBadRequest, "Reason"},
			{"an option that is not a tick", url.Values{"csrf": {csrf}, "reason": {"x"}, "restore_data": {"yes"}}, http.StatusBadRequest,
				"restore_data &#34;yes&#34;: want 1 (ticked) or nothing"},
			{"no form token", url.Values{"reason": {"x"}}, http.StatusForbidden, "out of date"},
		}
		for _, tt := range tests {
			rec := post(tt.form)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.says) {
				t.Errorf("%s: status %d, want %d saying %q\n%s", tt.name, rec.Code, tt.want, tt.says, rec.Body.String())
			}
		}
		if body := get(t, "/ui/releases/unknown-release", http.StatusNotFound); !strings.Contains(body, "switchback release list") {
			t.Errorf("an unknown release does not say how to find one:\n%s", body)
		}
		r, _, err := store.FindRelease(ctx, shipped.ID)
		if err != nil || r.Status != release.Finished {
			t.Errorf("release %s (%v) after refused rollbacks, want finished", r.Status, err)
		}
	})

	t.Run("confirmed: the API records the rollback; a second one is a no-op", func(t *testing.T) {
		rec := post(url.Values{"csrf": {csrf}, "reason": {"v1.1.0 breaks checkout"}, "force": {"1"}})
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/releases/"+shipped.ID+"?rollback=requested" {
			t.Fatalf("rollback: status %d Location %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body.String())
		}
		r, _, err := store.FindRelease(ctx, shipped.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != release.RollingBack || r.Rollback.By != "local" || r.Rollback.Reason != "v1.1.0 breaks checkout" || !r.Rollback.Force || r.Rollback.RestoreData {
			t.Errorf("release %s rollback %+v, want rolling back by local, forced, for the reason given", r.Status, r.Rollback)
		}
		body := get(t, "/ui/releases/"+shipped.ID+"?rollback=requested", http.StatusOK)
		contains(t, "the release rolling back", body, "Rollback requested", `status-rolling-back">rolling back<`, "<strong>Forced</strong>")
		if strings.Contains(body, "Roll back this release") {
			t.Error("a release rolling back offers the rollback again")
		}
		rec = post(url.Values{"csrf": {csrf}, "reason": {"again"}})
		if rec.Code != http.StatusSeeOther || !strings.HasSuffix(rec.Header().Get("Location"), "?rollback=noop") {
			t.Errorf("second rollback: status %d Location %q, want a no-op", rec.Code, rec.Header().Get("Location"))
		}
		if body := get(t, "/ui/releases/"+shipped.ID+"?rollback=hacked%20call%20555", http.StatusOK); strings.Contains(body, "555") || strings.Contains(body, `class="flash"`) {
			t.Error("the page shows text from its link")
		}
	})
}

func put(t *testing.T, store *configstore.Store, r release.Release) {
	t.Helper()
	_, rev, err := store.FindRelease(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutRelease(t.Context(), r, rev); err != nil {
		t.Fatal(err)
	}
}

// formToken is the csrf field of a page's form.
func formToken(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no form token on the page:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/control"
	"github.com/a8e2c47e/switchback/release"
)

// knownSchemas is the gateway's databases as control sees them: one
// database, main, at a version the test sets. Reading real migration
// tables is package databases' part, tested there.
type knownSchemas map[string]int64

func (k knownSchemas) Names() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range k {
			if !yield(n) {
				return
			}
		}
	})
}

func (k knownSchemas) Version(_ context.Context, db string) (int64, error) {
	v, ok := k[db]
	if !ok {
		return 0, fmt.Errorf("no database %q", db)
	}
	return v, nil
}

// newReleaseHarness is a harness whose Control knows database main at
// version 7, with service payments at version 1.
func newReleaseHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, func(o *Options) {
		c, err := control.New(control.Options{Store: o.Store, Instance: o.Instance, Schemas: knownSchemas{"main": 7}})
		if err != nil {
			t.Fatal(err)
		}
		o.Control = c
	})
	if _, err := h.store.PutService(t.Context(), "payments", json.RawMessage(`{"timeout":"2s"}`), 0,
		configstore.Meta{Author: "test", Source: configstore.SourceAPI}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) releases() []release.Release {
	h.t.Helper()
	list, err := h.store.ListReleases(h.t.Context(), "")
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

// TestReleaseCLI: a release started, made through the ordinary commands
// and finished from the command line shows every version it wrote in its
// timeline, and nothing written after it.
func TestReleaseCLI(t *testing.T) {
	h := newReleaseHarness(t)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	run := func(code int, args ...string) string {
		t.Helper()
		got, out, errOut := runCLI(t, env, args...)
		if got != code {
			t.Fatalf("switchback %s: exit %d, want %d\n%s%s", strings.Join(args, " "), got, code, out, errOut)
		}
		return out + errOut
	}

	var started ReleaseView
	out := run(cmdline.ExitOK, "release", "start", "shop", "v2", "127.0.0.1:9012", "--pool", "green", "--label", "v2",
		"--database", "main=7..8", "--reason", "ship v2", "--json")
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("release start --json: %v\n%s", err, out)
	}
	if started.Status != release.Open || started.Before.DeploymentVersion != 1 || started.Before.Databases["main"] != 7 ||
		started.Before.Services["payments"] != 1 || started.Databases["main"] != (release.SchemaNeed{Version: 8, MinVersion: 7}) {
		t.Fatalf("release start = %+v", started.Release)
	}

	run(cmdline.ExitOK, "pool", "shop", "green", "127.0.0.1:9012", "--release", "v2")
	run(cmdline.ExitOK, "weights", "shop", "blue=0", "green=100")
	run(cmdline.ExitOK, "flag", "shop", "new-cart", "50")
	run(cmdline.ExitOK, "config", "patch", "payments", `{"timeout":"3s"}`)
	out = run(cmdline.ExitOK, "changeset", "apply", `{"changes": [{"service": "payments", "patch": {"retries": 2}}]}`, "--json")
	var cs configstore.ChangeSet
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("changeset apply --json: %v\n%s", err, out)
	}

	out = run(cmdline.ExitOK, "release", "finish", "v2", "--reason", "all green")
	for _, want := range []string{"shop  release " + started.ID + "  v2  finished", "pool green  label v2  upstreams 127.0.0.1:9012",
		"deployment   v1", "v4", "weights      blue=100% green=0%", "blue=0% green=100%", "new-cart=50%", "payments v1", "payments v3",
		"change sets", cs.ID, "shop v2", "shop v4", "service payments v2", "release_started", "release_finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("release finish output lacks %q:\n%s", want, out)
		}
	}

	// Written after the finish: not the release's.
	run(cmdline.ExitOK, "flag", "shop", "new-cart", "60")
	out = run(cmdline.ExitOK, "release", "show", started.ID, "--json")
	var shown ReleaseView
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("release show --json: %v\n%s", err, out)
	}
	var got []string
	for _, e := range shown.Timeline {
		switch e.Kind {
		case control.TimelineDeploymentVersion:
			got = append(got, fmt.Sprintf("shop v%d", e.Version))
		case control.TimelineServiceVersion:
			got = append(got, fmt.Sprintf("payments v%d", e.Version))
		case control.TimelineChangeSet:
			got = append(got, "changeset "+e.ChangeSet)
		}
	}
	want := []string{"shop v2", "shop v3", "shop v4", "payments v2", "changeset " + cs.ID, "payments v3"}
	if !slices.Equal(got, want) {
		t.Errorf("timeline versions:\n got %q\nwant %q", got, want)
	}
	if a := shown.After; a == nil || a.DeploymentVersion != 4 || a.Flags["new-cart"] != 50 || a.Services["payments"] != 3 {
		t.Errorf("after = %+v; want shop v4, new-cart 50%%, payments v3", a)
	}

	out = run(cmdline.ExitOK, "release", "list", "shop")
	for _, want := range []string{"ID", started.ID, "v2", "finished"} {
		if !strings.Contains(out, want) {
			t.Errorf("release list lacks %q:\n%s", want, out)
		}
	}
	run(cmdline.ExitError, "release", "finish", started.ID)
	run(cmdline.ExitError, "release", "show", "r-20250101-000000-abcd")
	run(cmdline.ExitUsage, "release", "start", "shop", "v3")
	run(cmdline.ExitUsage, "release", "list", "--pool", "green")
	run(cmdline.ExitUsage, "release", "start", "shop", "v3", "--pool", "green", "--database", "main")
	run(cmdline.ExitUsage, "release", "start", "shop", "v3", "--pool", "green", "--apply", `{"weight": {}}`)
	run(cmdline.ExitUsage, "release", "frobnicate")
}

// TestReleaseRefused: bad input is a 4xx naming the field, and writes no
// release and no version.
func TestReleaseRefused(t *testing.T) {
	h := newReleaseHarness(t)
	const open = `{"name": "v1", "deployment": "shop", "pool": "blue"}`
	if r := h.do(http.MethodPost, "/api/v1/releases", open); r.status != http.StatusCreated {
		t.Fatalf("opening a release: %d %s", r.status, r.body)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown deployment", "POST", "/api/v1/releases", `{"name": "v2", "deployment": "nope", "pool": "green"}`, 404, "deployment"},
		{"unknown pool", "POST", "/api/v1/releases", `{"name": "v2", "deployment": "shop", "pool": "purple"}`, 400, "pool"},
		{"second open release", "POST", "/api/v1/releases", `{"name": "v2", "deployment": "shop", "pool": "green"}`, 400, "deployment"},
		{"database not configured", "POST", "/api/v1/releases",
			`{"name": "v2", "deployment": "shop", "pool": "green", "databases": {"reports": {"version": 3}}}`, 400, "databases.reports"},
		{"min above version", "POST", "/api/v1/releases",
			`{"name": "v2", "deployment": "shop", "pool": "green", "databases": {"main": {"version": 3, "min_version": 4}}}`, 400, "databases.main.min_version"},
		{"unknown field", "POST", "/api/v1/releases", `{"name": "v2", "deployment": "shop", "pool": "green", "databases": {"main": {"versoin": 3}}}`, 400, "databases.main.versoin"},
		{"bad name", "POST", "/api/v1/releases", `{"name": "v 2", "deployment": "shop", "pool": "green"}`, 400, "name"},
		{"unknown release", "GET", "/api/v1/releases/r-20250101-000000-abcd", "", 404, "id"},
		{"unknown release name", "POST", "/api/v1/releases/v9/finish", `{}`, 404, "id"},
		{"bad deployment filter", "GET", "/api/v1/releases?deployment=a/b", "", 400, "deployment"},
	}
	for _, tt := range tests {
		r := h.do(tt.method, tt.path, tt.body)
		if r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
			continue
		}
		if e := r.errorBody(t); e.Field != tt.field {
			t.Errorf("%s: field %q (%s), want %q", tt.name, e.Field, e.Error, tt.field)
		}
	}
	if n := len(h.releases()); n != 1 {
		t.Errorf("%d releases after the refusals, want the one opened", n)
	}
	if r := h.do(http.MethodPost, "/api/v1/releases/v1/finish", `{"reason": "done"}`); r.status != http.StatusOK {
		t.Fatalf("finishing v1: %d %s", r.status, r.body)
	}

	// One step: refused before anything is written.
	applyTests := []struct {
		name, apply string
		status      int
		field       string
	}{
		{"unknown pool in weights", `{"weights": {"blue": 50, "purple": 50}}`, 400, "apply.weights.purple"},
		{"flag out of range", `{"flags": {"new-cart": 101}}`, 400, "apply.flags.new-cart.percent"},
		{"unknown service", `{"changes": [{"service": "nosuch", "patch": {"a": 1}}], "weights": {"blue": 0, "green": 100}}`, 404, "apply.changes"},
		{"nothing to apply", `{}`, 400, "apply"},
		{"pool without upstreams", `{"pool_upstreams": true}`, 400, "upstreams"},
	}
	for _, tt := range applyTests {
		body := `{"name": "v2", "deployment": "shop", "pool": "green", "apply": ` + tt.apply + `}`
		r := h.do(http.MethodPost, "/api/v1/releases", body)
		if r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
			continue
		}
		if e := r.errorBody(t); e.Field != tt.field {
			t.Errorf("%s: field %q (%s), want %q", tt.name, e.Field, e.Error, tt.field)
		}
	}
	if n, v := len(h.releases()), h.current("shop").Meta.Version; n != 1 || v != 1 {
		t.Errorf("after the refusals: %d releases, shop at v%d; want 1 and v1", n, v)
	}
	if svc, err := h.store.GetService(t.Context(), "payments"); err != nil || svc.Meta.Version != 1 {
		t.Errorf("payments after the refusals: v%d, %v; want v1", svc.Meta.Version, err)
	}
}

// TestReleaseOneStep: CI makes a whole release in one call; each part is
// a version of its own, and the release is finished.
func TestReleaseOneStep(t *testing.T) {
	h := newReleaseHarness(t)
	c, err := NewClient(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.StartRelease(t.Context(), ReleaseRequest{Name: "v2", Deployment: "shop", Pool: "green", Label: "v2",
		Upstreams: []string{"127.0.0.1:9012"}, Databases: map[string]release.SchemaNeed{"main": {Version: 7, MinVersion: 7}},
		Apply: &ReleaseApply{PoolUpstreams: true, Weights: map[string]float64{"blue": 0, "green": 100}, Flags: map[string]float64{"new-cart": 50},
			Changes: []configstore.ChangeSpec{{Service: "payments", Patch: json.RawMessage(`{"timeout":"3s"}`)}}}},
		WriteOptions{Reason: "pipeline 12"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != release.Finished || v.After == nil || v.After.DeploymentVersion != 4 || v.After.Pools["green"].Label != "v2" ||
		v.After.Weights["green"] != 100 || v.After.Flags["new-cart"] != 50 || v.After.Services["payments"] != 2 || len(v.After.ChangeSets) != 1 {
		t.Fatalf("one-step release = %+v, after %+v", v.Release, v.After)
	}
	metas, err := h.store.History(t.Context(), "shop", 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if m.Author != "local" || m.Reason != "release v2: pipeline 12" {
			t.Errorf("version %d: by %s, %q; want local, the release's reason", m.Version, m.Author, m.Reason)
		}
	}
	list, err := c.Releases(t.Context(), "shop")
	if err != nil || len(list) != 1 || list[0].ID != v.ID {
		t.Errorf("Releases = %v, %v; want %s", list, err, v.ID)
	}
	if rec := h.audit.last(t); rec.Action != "release-start" || rec.Deployment != "shop" || rec.From != 1 || rec.Version != 4 || rec.Status != http.StatusCreated {
		t.Errorf("audit = %+v", rec)
	}
}

package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/rollout"
)

// guarded gives shop a guard, which a rollout needs to be judged by.
func guarded(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.store.Update(t.Context(), "shop", 0, configstore.Meta{Author: "test", Source: configstore.SourceAPI},
		func(c *gateway.Config) error {
			c.Guard = &gateway.Guard{ErrorRate: 5}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
}

// driverStep does what the elected driver does when a step is due: it
// writes step i's version and records the step as applied at started.
func (h *harness) driverStep(i int, started time.Time) {
	h.t.Helper()
	ctx := h.t.Context()
	r, rev, err := h.server.control.Rollout(ctx, "shop")
	if err != nil {
		h.t.Fatal(err)
	}
	target, _ := rollout.ParseTarget(r.Target)
	res, err := h.store.Update(ctx, "shop", 0, configstore.Meta{Author: "host-a", Source: configstore.SourceRollout, Reason: rollout.StepReason(r, i)},
		func(c *gateway.Config) error { return rollout.SetWeight(c, target.Name, r.Steps[i], r.Before) })
	if err != nil {
		h.t.Fatal(err)
	}
	r.Step, r.StepStarted, r.Version = i, started, res.Doc.Meta.Version
	r.Stamp(testNow)
	if _, err := h.store.PutRecord(ctx, rollout.RecordKind, "shop", r, rev); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) rolloutStatus(resp response) RolloutStatus {
	h.t.Helper()
	var st RolloutStatus
	resp.decode(h.t, &st)
	return st
}

// eventKinds lists shop's events, oldest first.
func (h *harness) eventKinds() []string {
	h.t.Helper()
	evs, err := h.store.Events(h.t.Context(), "shop", 0)
	if err != nil {
		h.t.Fatal(err)
	}
	var kinds []string
	for _, ev := range slices.Backward(evs) {
		kinds = append(kinds, ev.Kind)
	}
	return kinds
}

func TestRolloutLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	guarded(t, h)
	const path = "/api/v1/deployments/shop/rollouts"

	resp := h.do("GET", path, "")
	if e := resp.errorBody(t); resp.status != http.StatusNotFound || e.Field != "name" || !strings.Contains(e.Error, `deployment "shop" has no rollout`) {
		t.Fatalf("GET before any rollout = %d %s", resp.status, resp.body)
	}

	resp = h.do("POST", path, `{"target": "pool:green", "steps": [1, 10, 50, 100], "bake": "30m", "reason": "ship v1.1"}`)
	if resp.status != http.StatusCreated {
		t.Fatalf("start = %d %s", resp.status, resp.body)
	}
	st := h.rolloutStatus(resp)
	if !strings.HasPrefix(st.ID, "r-") || st.State != rollout.Running || st.Step != -1 || st.Target != "pool:green" || st.Author != "local" ||
		st.From != 0 || time.Duration(st.Bake) != 30*time.Minute || st.Reason != "ship v1.1" || !slices.Equal(st.Steps, []float64{1, 10, 50, 100}) {
		t.Fatalf("started %+v", st)
	}
	if rec := h.audit.last(t); rec.Action != "rollout-start" || rec.Target != "pool:green" || rec.Status != http.StatusCreated || rec.Reason != "ship v1.1" {
		t.Errorf("audit %+v", rec)
	}
	id := st.ID

	// One active rollout per deployment.
	resp = h.do("POST", path, `{"target": "flag:new-cart", "steps": [50], "bake": "1m"}`)
	if e := resp.errorBody(t); resp.status != http.StatusConflict || !strings.Contains(e.Error, "already has rollout "+id+" of pool:green, running") {
		t.Fatalf("second rollout = %d %s", resp.status, resp.body)
	}
	if rec := h.audit.last(t); rec.Status != http.StatusConflict || rec.Error == "" {
		t.Errorf("refusal audited as %+v", rec)
	}

	// The driver applies step 2 ten minutes before "now": 20 minutes left.
	h.driverStep(1, testNow.Add(-10*time.Minute))
	if st := h.rolloutStatus(h.do("GET", path, "")); st.Step != 1 || time.Duration(st.BakeLeft) != 20*time.Minute {
		t.Fatalf("GET = step %d, bake left %v; want step index 1 and 20m", st.Step, time.Duration(st.BakeLeft))
	}

	steps := []struct {
		action, body string
		status       int
		state        rollout.State
		message      string // substring of the rollout's message, or of the error
		bakeLeft     time.Duration
	}{
		{"pause", `{"reason": "lunch"}`, http.StatusOK, rollout.Paused, "paused by local: lunch", 0},
		{"pause", `{}`, http.StatusConflict, "", "is paused; only a running rollout can be paused", 0},
		{"resume", `{}`, http.StatusOK, rollout.Running, "resumed by local; the step's bake starts again", 30 * time.Minute},
		{"resume", `{}`, http.StatusConflict, "", "only a paused rollout can be resumed", 0},
		{"abort", `{"reason": "bad latency"}`, http.StatusOK, rollout.Aborted, "aborted by local: bad latency; pool:green back to 0% (version 4)", 0},
		{"abort", `{}`, http.StatusConflict, "", "is aborted; only a running or paused rollout can be aborted", 0},
		{"pause", `{"speed": 1}`, http.StatusBadRequest, "", `unknown field "speed"`, 0},
	}
	for _, st := range steps {
		resp := h.do("POST", path+"/"+st.action, st.body)
		if resp.status != st.status {
			t.Fatalf("%s %s = %d %s, want %d", st.action, st.body, resp.status, resp.body, st.status)
		}
		if st.status != http.StatusOK {
			if e := resp.errorBody(t); !strings.Contains(e.Error, st.message) {
				t.Errorf("%s: error %q, want %q", st.action, e.Error, st.message)
			}
			continue
		}
		got := h.rolloutStatus(resp)
		if got.ID != id || got.State != st.state || !strings.Contains(got.Message, st.message) || time.Duration(got.BakeLeft) != st.bakeLeft {
			t.Errorf("%s = %s %q bake left %v, want %s %q %v", st.action, got.State, got.Message, time.Duration(got.BakeLeft), st.state, st.message, st.bakeLeft)
		}
		if stored, _, _ := h.server.control.Rollout(t.Context(), "shop"); stored.State != st.state || stored.Message != got.Message {
			t.Errorf("%s: stored %s %q, answered %s %q", st.action, stored.State, stored.Message, got.State, got.Message)
		}
	}

	// The abort put green back through the store, as the rollout.
	doc := h.current("shop")
	if w := doc.Config.Weights; w["blue"] != 100 || w["green"] != 0 {
		t.Errorf("weights after abort %v, want blue 100", w)
	}
	if doc.Meta.Version != 4 || doc.Meta.Source != configstore.SourceRollout || doc.Meta.Author != "local" || doc.Meta.Reason != "rollout "+id+" aborted by local: bad latency" {
		t.Errorf("rollback version %+v", doc.Meta)
	}
	var abortRec Record
	for _, rec := range h.audit.all() {
		if rec.Action == "rollout-abort" && rec.Status == http.StatusOK {
			abortRec = rec
		}
	}
	if abortRec.Version != 4 || abortRec.From != 3 || len(abortRec.Changes) == 0 || abortRec.Target != "pool:green" {
		t.Errorf("abort audit %+v, want version 3 → 4 with changes", abortRec)
	}
	if got, want := strings.Join(h.eventKinds(), ","), "rollout_started,rollout_paused,rollout_resumed,rollout_aborted"; got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	evs, _ := h.store.Events(t.Context(), "shop", 1)
	if ev := evs[0]; ev.Version != 4 || ev.Instance != "host-a" || ev.Subject != "pool:green" {
		t.Errorf("abort event %+v", ev)
	}

	// A finished rollout makes way for the next.
	resp = h.do("POST", path, `{"target": "flag:new-cart", "steps": [25, 100], "bake": "0s"}`)
	if st := h.rolloutStatus(resp); resp.status != http.StatusCreated || st.ID == id || st.From != 10 {
		t.Errorf("rollout after an abort = %d %s", resp.status, resp.body)
	}
}

func TestRolloutRejected(t *testing.T) {
	h := newHarness(t, nil)
	guarded(t, h)
	web := shopConfig()
	web.Name = "web"
	bootstrap(t, h.store, web)

	tests := []struct {
		name   string
		path   string
		body   string
		hdr    []string
		status int
		field  string
		want   string
	}{
		{"no kind", "shop", `{"target": "green", "steps": [10], "bake": "1m"}`, nil, 400, "target", `target: "green": want pool:NAME or flag:NAME`},
		{"unknown pool", "shop", `{"target": "pool:purple", "steps": [10], "bake": "1m"}`, nil, 400, "target", "unknown pool; pools are blue, green"},
		{"no steps", "shop", `{"target": "pool:green", "bake": "1m"}`, nil, 400, "steps", "increasing order"},
		{"steps decrease", "shop", `{"target": "pool:green", "steps": [10, 5], "bake": "1m"}`, nil, 400, "steps[1]", "want more than steps[0], 10"},
		{"step over 100", "shop", `{"target": "pool:green", "steps": [10, 101], "bake": "1m"}`, nil, 400, "steps[1]", "at most 100"},
		{"flag step not above current", "shop", `{"target": "flag:new-cart", "steps": [10], "bake": "1m"}`, nil, 400, "steps[0]", "current 10%"},
		{"steps as a string", "shop", `{"target": "pool:green", "steps": "1,10", "bake": "1m"}`, nil, 400, "steps", "want a JSON array"},
		{"bake without unit", "shop", `{"target": "pool:green", "steps": [10], "bake": "30"}`, nil, 400, "bake", `bake: "30": want a duration like 30m`},
		{"no bake", "shop", `{"target": "pool:green", "steps": [10]}`, nil, 400, "bake", "want a duration"},
		{"unknown field", "shop", `{"target": "pool:green", "steps": [10], "bake": "1m", "speed": "fast"}`, nil, 400, "speed", "unknown field"},
		{"long reason", "shop", `{"target": "pool:green", "steps": [10], "bake": "1m", "reason": "` + strings.Repeat("r", 501) + `"}`, nil, 400, "reason", "at most 500"},
		{"no guard", "web", `{"target": "pool:green", "steps": [10], "bake": "1m"}`, nil, 400, "guard", "give web a guard"},
		{"unknown deployment", "nope", `{"target": "pool:green", "steps": [10], "bake": "1m"}`, nil, 404, "name", `deployment "nope"`},
		{"stale If-Match", "shop", `{"target": "pool:green", "steps": [10], "bake": "1m"}`, []string{"If-Match", `"1"`}, 409, "If-Match", "at version 2, not 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do("POST", "/api/v1/deployments/"+tt.path+"/rollouts", tt.body, tt.hdr...)
			e := resp.errorBody(t)
			if resp.status != tt.status || e.Field != tt.field || !strings.Contains(e.Error, tt.want) {
				t.Errorf("= %d %+v, want %d field %q mentioning %q", resp.status, e, tt.status, tt.field, tt.want)
			}
		})
	}
	for _, action := range []string{"pause", "resume", "abort"} {
		resp := h.do("POST", "/api/v1/deployments/shop/rollouts/"+action, `{}`)
		if e := resp.errorBody(t); resp.status != http.StatusNotFound || !strings.Contains(e.Error, "has no rollout") {
			t.Errorf("%s without a rollout = %d %s", action, resp.status, resp.body)
		}
	}
	if resp := h.do("GET", "/api/v1/deployments/nope/rollouts", ""); resp.status != http.StatusNotFound || !strings.Contains(resp.errorBody(t).Error, `deployment "nope" not found`) {
		t.Errorf("GET of an unknown deployment = %d %s", resp.status, resp.body)
	}
	if _, _, err := h.server.control.Rollout(t.Context(), "shop"); err == nil {
		t.Error("a refused request stored a rollout")
	}
}

func TestRolloutRoles(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Tokens = tokensFile(t) })
	guarded(t, h)
	body := `{"target": "pool:green", "steps": [10], "bake": "1m"}`
	if resp := h.do("POST", "/api/v1/deployments/shop/rollouts", body, "Authorization", "Bearer "+viewerToken); resp.status != http.StatusForbidden {
		t.Errorf("viewer starting a rollout = %d %s", resp.status, resp.body)
	}
	if resp := h.do("POST", "/api/v1/deployments/shop/rollouts", body, "Authorization", "Bearer "+operatorToken); resp.status != http.StatusCreated {
		t.Fatalf("operator starting a rollout = %d %s", resp.status, resp.body)
	}
	if resp := h.do("GET", "/api/v1/deployments/shop/rollouts", "", "Authorization", "Bearer "+viewerToken); resp.status != http.StatusOK {
		t.Errorf("viewer reading the rollout = %d %s", resp.status, resp.body)
	}
	if resp := h.do("POST", "/api/v1/deployments/shop/rollouts/abort", `{}`, "Authorization", "Bearer "+viewerToken); resp.status != http.StatusForbidden {
		t.Errorf("viewer aborting = %d %s", resp.status, resp.body)
	}
}

// TestRolloutCLI drives a rollout through the command line, each step
// starting where the one before ended.
func TestRolloutCLI(t *testing.T) {
	h := newHarness(t, nil)
	guarded(t, h)
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	if !slices.ContainsFunc(Commands(), func(c CommandInfo) bool { return c.Name == "rollout" }) {
		t.Fatal("rollout is not among Commands(), so it is no Caddy subcommand")
	}
	steps := []struct {
		args   []string
		before func() // what the driver does before the command
		code   int
		stdout []string
		stderr []string
	}{
		{args: []string{"rollout", "status", "shop"}, code: 1, stderr: []string{`deployment "shop" has no rollout`, "[HTTP 404]"}},
		{args: []string{"rollout", "start", "shop", "--target", "pool:green", "--steps", "1,10,50%,100", "--bake", "30m", "--reason", "ship v1.1"},
			stdout: []string{"shop  rollout r-", "  pool:green  running, before step 1/4", `by local: "ship v1.1"`, "STEP  VALUE  STATE",
				"1/4   1%     -", "4/4   100%   -", "bake 30m0s per step; on abort pool:green goes back to 0%", "waiting for the elected gateway to apply step 1/4"}},
		{args: []string{"rollout", "start", "shop", "--target", "pool:green", "--steps", "10", "--bake", "1m"}, code: 1,
			stderr: []string{"already has rollout r-", "[HTTP 409]"}},
		{args: []string{"rollout", "status", "shop"}, before: func() { h.driverStep(1, testNow.Add(-10*time.Minute)) },
			stdout: []string{"running, step 2/4", "1/4   1%     baked", "2/4   10%    baking, 20m0s left", "3/4   50%    -"}},
		{args: []string{"rollout", "pause", "shop", "--reason", "lunch"}, stdout: []string{"paused, step 2/4", "2/4   10%    paused", "paused by local: lunch"}},
		{args: []string{"rollout", "--reason=back", "resume", "shop"}, stdout: []string{"running, step 2/4", "2/4   10%    baking, 30m0s left", "resumed by local: back"}},
		{args: []string{"rollout", "status", "shop"}, before: func() { h.driverStep(2, testNow.Add(-time.Hour)) },
			stdout: []string{"3/4   50%    baked, waiting for the guard"}},
		{args: []string{"rollout", "abort", "shop", "--reason", "p95"}, stdout: []string{"shop  rollout r-", "aborted\n", "2/4   10%    baked", "3/4   50%    aborted",
			"aborted by local: p95; pool:green back to 0% (version 5)"}},

		// Refusals by the API: its message and field, exit 1.
		{args: []string{"rollout", "pause", "shop"}, code: 1, stderr: []string{"is aborted; only a running rollout can be paused (field: state)", "[HTTP 409]"}},
		{args: []string{"rollout", "start", "shop", "--target", "pool:purple", "--steps", "10", "--bake", "1m"}, code: 1,
			stderr: []string{"unknown pool; pools are blue, green (field: target)", "[HTTP 400]"}},
		{args: []string{"rollout", "start", "shop", "--target", "pool:green", "--steps", "50,10", "--bake", "1m"}, code: 1, stderr: []string{"(field: steps[1])"}},

		// Bad command lines: exit 2 and usage.
		{args: []string{"rollout"}, code: 2, stderr: []string{"want a verb (start, status, pause, resume, abort) and a deployment name", "usage: switchback rollout start|status"}},
		{args: []string{"rollout", "start", "shop"}, code: 2, stderr: []string{"rollout start needs --target"}},
		{args: []string{"rollout", "start", "shop", "--target", "pool:green", "--steps", "1,x", "--bake", "1m"}, code: 2, stderr: []string{`--steps "1,x": want percentages separated by commas`}},
		{args: []string{"rollout", "pause", "shop", "--bake", "1m"}, code: 2, stderr: []string{"--bake is for rollout start"}},
		{args: []string{"rollout", "status", "shop", "--reason", "x"}, code: 2, stderr: []string{"--reason is for start, pause, resume and abort"}},
		{args: []string{"rollout", "frob", "shop"}, code: 2, stderr: []string{`unknown verb "frob"`}},
		{args: []string{"rollout", "-h"}, code: 0, stderr: []string{"usage: switchback rollout", "-steps PERCENTAGES"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		code, stdout, stderr := runCLI(t, env, st.args...)
		if code != st.code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", st.args, code, st.code, stdout, stderr)
		}
		for _, want := range st.stdout {
			if !strings.Contains(stdout, want) {
				t.Errorf("%v: stdout lacks %q:\n%s", st.args, want, stdout)
			}
		}
		for _, want := range st.stderr {
			if !strings.Contains(stderr, want) {
				t.Errorf("%v: stderr lacks %q:\n%s", st.args, want, stderr)
			}
		}
	}

	code, stdout, _ := runCLI(t, env, "rollout", "status", "shop", "--json")
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &m); code != 0 || err != nil || string(m["state"]) != `"aborted"` || m["bake_left"] == nil {
		t.Errorf("--json: exit %d, %v:\n%s", code, err, stdout)
	}
	if doc := h.current("shop"); doc.Config.Weights["green"] != 0 || doc.Meta.Source != configstore.SourceRollout {
		t.Errorf("after the CLI's abort: weights %v by %s", doc.Config.Weights, doc.Meta.Source)
	}
}

// TestRolloutActionIfMatch: pause, resume and abort honour If-Match.
func TestRolloutActionIfMatch(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.store.Update(t.Context(), "shop", 0, configstore.Meta{Author: "t", Source: configstore.SourceAPI}, func(c *gateway.Config) error {
		c.Guard = &gateway.Guard{ErrorRate: 5}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if r := h.do("POST", "/api/v1/deployments/shop/rollouts", `{"target": "pool:green", "steps": [10, 100], "bake": "1m"}`); r.status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	cur := h.current("shop").Meta.Version
	r := h.do("POST", "/api/v1/deployments/shop/rollouts/pause", `{}`, "If-Match", fmt.Sprintf(`"%d"`, cur+5))
	if r.status != http.StatusConflict {
		t.Fatalf("pause with a stale If-Match: %d %s, want 409", r.status, r.body)
	}
	if ro, _, err := h.server.control.Rollout(t.Context(), "shop"); err != nil || ro.State == rollout.Paused {
		t.Errorf("rollout %v (%v) after a refused pause, want it not paused", ro.State, err)
	}
	if r := h.do("POST", "/api/v1/deployments/shop/rollouts/pause", `{}`, "If-Match", fmt.Sprintf(`"%d"`, cur)); r.status != http.StatusOK {
		t.Errorf("pause with the current If-Match: %d %s", r.status, r.body)
	}
}

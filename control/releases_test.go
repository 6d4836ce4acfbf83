package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

// schemaVersions is a Schemas over versions the test sets: the migration
// side is package databases' to test against real databases.
type schemaVersions struct {
	mu       sync.Mutex
	versions map[string]int64
	broken   map[string]error
}

func (s *schemaVersions) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.versions {
		names = append(names, n)
	}
	for n := range s.broken {
		names = append(names, n)
	}
	return names
}

func (s *schemaVersions) Version(_ context.Context, db string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.broken[db]; err != nil {
		return 0, err
	}
	v, ok := s.versions[db]
	if !ok {
		return 0, fmt.Errorf("no database %q", db)
	}
	return v, nil
}

func (s *schemaVersions) set(db string, v int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions[db] = v
}

// releaseHarness is a harness whose Control knows database main.
func releaseHarness(t *testing.T) (*harness, *schemaVersions) {
	t.Helper()
	h := newHarness(t)
	dbs := &schemaVersions{versions: map[string]int64{"main": 7}}
	var err error
	h.ctl, err = New(Options{Store: h.store, Instance: "gw-a", Now: h.clock, Schemas: dbs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.PutService(t.Context(), "payments", json.RawMessage(`{"timeout":"2s"}`), 0, meta("setup")); err != nil {
		t.Fatal(err)
	}
	return h, dbs
}

func meta(author string) configstore.Meta {
	return configstore.Meta{Author: author, Source: configstore.SourceAPI}
}

var alice = Op{Deployment: "shop", Author: "alice", Reason: "ship v2"}

func v2Request() ReleaseRequest {
	return ReleaseRequest{Name: "v2", Pool: "green", Label: "v2", Upstreams: []string{"127.0.0.1:9102"},
		Databases: map[string]release.SchemaNeed{"main": {Version: 8, MinVersion: 7}}}
}

func TestReleaseStartFinish(t *testing.T) {
	t.Parallel()
	h, dbs := releaseHarness(t)
	ctx := t.Context()
	r, err := h.ctl.StartRelease(ctx, alice, ReleaseRequest{Name: "v2", Pool: "green",
		Databases: map[string]release.SchemaNeed{"main": {Version: 8, MinVersion: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	b := r.Before
	if r.Status != release.Open || b.DeploymentVersion != 1 || b.Weights["blue"] != 100 || b.Flags["new_cart"] != 5 ||
		b.Pools["green"].Upstreams[0] != "127.0.0.1:9002" || b.Services["payments"] != 1 || b.Databases["main"] != 7 {
		t.Fatalf("StartRelease = %+v; want open with the state before", r)
	}

	// The release's changes, made by whatever path: each its own version.
	edit := func(f func(*gateway.Config)) {
		t.Helper()
		if _, err := h.store.Update(ctx, "shop", 0, meta("ci"), func(c *gateway.Config) error { f(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	edit(func(c *gateway.Config) {
		c.Pools["green"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9102"}, Release: "v2"}
	})
	cs, err := h.store.ApplyChangeSet(ctx, []configstore.ChangeSpec{{Service: "payments", Patch: json.RawMessage(`{"timeout":"3s"}`)}}, meta("ci"))
	if err != nil {
		t.Fatal(err)
	}
	edit(func(c *gateway.Config) { c.Weights = map[string]float64{"blue": 0, "green": 100} })
	edit(func(c *gateway.Config) { c.Flags["new_cart"] = gateway.Flag{Percent: 50} })
	dbs.set("main", 8)

	r, err = h.ctl.FinishRelease(ctx, Op{Author: "ci"}, "v2")
	if err != nil {
		t.Fatal(err)
	}
	a := r.After
	if r.Status != release.Finished || a == nil || a.DeploymentVersion != 4 || a.Weights["green"] != 100 || a.Flags["new_cart"] != 50 ||
		a.Services["payments"] != 2 || a.Databases["main"] != 8 || !slices.Equal(a.ChangeSets, []string{cs.ID}) {
		t.Fatalf("FinishRelease = %+v, after %+v; want the state after", r, a)
	}
	if !slices.Equal(r.Upstreams, []string{"127.0.0.1:9102"}) || r.Label != "v2" {
		t.Errorf("release runs %v %q; want the pool's upstreams and label taken at finish", r.Upstreams, r.Label)
	}
	var se *ReleaseStateError
	if _, err := h.ctl.FinishRelease(ctx, Op{Author: "ci"}, r.ID); !errors.As(err, &se) {
		t.Errorf("finishing again = %v, want a *ReleaseStateError", err)
	}

	// A version after the finish is not the release's.
	edit(func(c *gateway.Config) { c.Flags["new_cart"] = gateway.Flag{Percent: 60} })
	tl, err := h.ctl.ReleaseTimeline(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tl {
		switch e.Kind {
		case TimelineDeploymentVersion:
			got = append(got, fmt.Sprintf("shop v%d", e.Version))
		case TimelineServiceVersion:
			got = append(got, fmt.Sprintf("%s v%d %s", e.Service, e.Version, e.ChangeSet))
		case TimelineChangeSet:
			got = append(got, "changeset "+e.ChangeSet)
		case TimelineEvent:
			got = append(got, e.Event)
		}
	}
	want := []string{"release_started", "shop v2", "changeset " + cs.ID, "payments v2 " + cs.ID, "shop v3", "shop v4", "release_finished"}
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n got %q\nwant %q", got, want)
	}
}

func TestReleaseRejected(t *testing.T) {
	t.Parallel()
	h, dbs := releaseHarness(t)
	ctx := t.Context()
	dbs.mu.Lock()
	dbs.broken = map[string]error{}
	dbs.mu.Unlock()
	open, err := h.ctl.StartRelease(ctx, Op{Deployment: "shop", Author: "alice"}, ReleaseRequest{Name: "v1", Pool: "blue"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		op    Op
		req   ReleaseRequest
		field string
	}{
		{"unknown pool", alice, ReleaseRequest{Name: "v2", Pool: "purple"}, "pool"},
		{"bad name", alice, ReleaseRequest{Name: "v 2", Pool: "green"}, "name"},
		{"no author", Op{Deployment: "shop"}, ReleaseRequest{Name: "v2", Pool: "green"}, "author"},
		{"bad upstream", alice, ReleaseRequest{Name: "v2", Pool: "green", Upstreams: []string{"no port"}}, "upstreams"},
		{"database not configured", alice, ReleaseRequest{Name: "v2", Pool: "green",
			Databases: map[string]release.SchemaNeed{"reports": {Version: 1}}}, "databases.reports"},
		{"second open release", alice, ReleaseRequest{Name: "v2", Pool: "green"}, "deployment"},
	}
	for _, tt := range tests {
		var fe *gateway.FieldError
		if _, err := h.ctl.StartRelease(ctx, tt.op, tt.req); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, tt.field) {
			t.Errorf("%s: StartRelease = %v, want a *FieldError of %s", tt.name, err, tt.field)
		}
	}
	if _, err := h.ctl.StartRelease(ctx, Op{Deployment: "cart", Author: "alice"}, v2Request()); !errors.Is(err, configstore.ErrNotFound) {
		t.Errorf("unknown deployment: StartRelease = %v, want ErrNotFound", err)
	}
	if _, err := h.ctl.FinishRelease(ctx, Op{Author: "ci"}, "v9"); !errors.Is(err, configstore.ErrNotFound) {
		t.Errorf("unknown release: FinishRelease = %v, want ErrNotFound", err)
	}
	if _, err := h.ctl.FinishRelease(ctx, Op{Deployment: "web", Author: "ci"}, open.ID); err == nil {
		t.Error("finishing with another deployment succeeded")
	}

	// With the open one finished, a database that cannot be read refuses
	// the start.
	if _, err := h.ctl.FinishRelease(ctx, Op{Author: "ci"}, open.ID); err != nil {
		t.Fatal(err)
	}
	dbs.mu.Lock()
	dbs.broken["main"] = errors.New("connection refused")
	dbs.mu.Unlock()
	var se *SchemaError
	if _, err := h.ctl.StartRelease(ctx, alice, ReleaseRequest{Name: "v2", Pool: "green"}); !errors.As(err, &se) || se.Database != "main" {
		t.Errorf("broken database: StartRelease = %v, want a *SchemaError of main", err)
	}
	if list, err := h.store.ListReleases(ctx, ""); err != nil || len(list) != 1 {
		t.Errorf("releases after the refusals: %v, %v; want only %s", list, err, open.ID)
	}
	if v := h.doc().Meta.Version; v != 1 {
		t.Errorf("shop at version %d after the refusals, want 1", v)
	}
}

func TestApplyRelease(t *testing.T) {
	t.Parallel()
	h, _ := releaseHarness(t)
	ctx := t.Context()
	apply := ReleaseApply{
		PoolUpstreams: true,
		Changes:       []configstore.ChangeSpec{{Service: "payments", Patch: json.RawMessage(`{"timeout":"3s"}`)}},
		Weights:       map[string]float64{"blue": 0, "green": 100},
		Flags:         map[string]float64{"new_cart": 50, "fast_checkout": 10},
	}

	// Refused before anything is written.
	var fe *gateway.FieldError
	bad := apply
	bad.Weights = map[string]float64{"blue": 10, "purple": 90}
	if _, err := h.ctl.ApplyRelease(ctx, alice, v2Request(), bad); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "apply.weights") {
		t.Errorf("unknown pool in weights: ApplyRelease = %v, want a *FieldError of apply.weights", err)
	}
	bad = apply
	bad.Changes = []configstore.ChangeSpec{{Service: "nosuch", Patch: json.RawMessage(`{"a":1}`)}}
	if _, err := h.ctl.ApplyRelease(ctx, alice, v2Request(), bad); !errors.Is(err, configstore.ErrNotFound) {
		t.Errorf("unknown service: ApplyRelease = %v, want ErrNotFound", err)
	}
	if _, err := h.ctl.ApplyRelease(ctx, alice, v2Request(), ReleaseApply{}); !errors.As(err, &fe) || fe.Field != "apply" {
		t.Errorf("empty apply: ApplyRelease = %v, want a *FieldError of apply", err)
	}
	if list, err := h.store.ListReleases(ctx, ""); err != nil || len(list) != 0 || h.doc().Meta.Version != 1 {
		t.Fatalf("after the refusals: releases %v (%v), shop at %d; want nothing written", list, err, h.doc().Meta.Version)
	}
	if evs := h.events(); len(evs) != 0 {
		t.Errorf("events after the refusals: %+v; want none", evs)
	}

	r, err := h.ctl.ApplyRelease(ctx, Op{Deployment: "shop", Author: "ci", Reason: "pipeline 12"}, v2Request(), apply)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != release.Finished || r.After.DeploymentVersion != 4 || r.After.Pools["green"].Label != "v2" ||
		r.After.Weights["green"] != 100 || r.After.Flags["fast_checkout"] != 10 || r.After.Services["payments"] != 2 || len(r.After.ChangeSets) != 1 {
		t.Fatalf("ApplyRelease = %+v, after %+v", r, r.After)
	}
	if got, want := h.history(), []string{"api ci: release v2: pipeline 12", "api ci: release v2: pipeline 12", "api ci: release v2: pipeline 12"}; !slices.Equal(got, want) {
		t.Errorf("history = %q, want %q", got, want)
	}
	tl, err := h.ctl.ReleaseTimeline(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var summaries []string
	for _, e := range tl {
		if e.Kind == TimelineDeploymentVersion {
			summaries = append(summaries, e.Summary)
		}
	}
	if len(summaries) != 3 || !strings.Contains(summaries[0], "pools.green") || !strings.Contains(summaries[1], "weights") || !strings.Contains(summaries[2], "flags") {
		t.Errorf("deployment versions in the timeline: %q; want pool, weights, flags in that order", summaries)
	}
}

// TestReleaseTimelineRollback: the timeline holds the deployment's events
// (a fallback) from the release's start to the end of its rollback, and
// the rollback's steps with their durations.
func TestReleaseTimelineRollback(t *testing.T) {
	t.Parallel()
	h, _ := releaseHarness(t)
	ctx := t.Context()
	r, err := h.ctl.StartRelease(ctx, alice, ReleaseRequest{Name: "v2", Pool: "green"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = h.ctl.FinishRelease(ctx, Op{Author: "ci"}, r.ID); err != nil {
		t.Fatal(err)
	}
	h.ctl.Record(ctx, configstore.Event{Deployment: "shop", Kind: "fallback", Subject: "pool:green", Reason: "error rate 12%"})
	h.ctl.Record(ctx, configstore.Event{Deployment: "web", Kind: "fallback", Reason: "another deployment's"})

	stored, rev, err := h.store.GetRelease(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	evs := h.events()
	end := evs[len(evs)-1].Time
	stored.Status = release.RolledBack
	stored.Rollback = &release.Rollback{Requested: end, Finished: end, Steps: []release.Step{
		{Kind: release.StepFlags, Status: release.StepSkipped, Plan: "no flag raised"},
		{Kind: release.StepTraffic, Status: release.StepDone, Started: end.Add(-3 * time.Second), Finished: end.Add(-time.Second), Result: "wrote version 2"},
	}}
	if _, err := h.store.PutRelease(ctx, stored, rev); err != nil {
		t.Fatal(err)
	}
	// After the rollback's end: not the release's.
	h.ctl.Record(ctx, configstore.Event{Deployment: "shop", Kind: "fallback", Reason: "later"})

	tl, err := h.ctl.ReleaseTimeline(ctx, stored)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range tl {
		switch e.Kind {
		case TimelineEvent:
			got = append(got, e.Event+": "+e.Summary)
		case TimelineRollbackStep:
			got = append(got, fmt.Sprintf("%s %s %s: %s", e.Step, e.Status, time.Duration(e.Duration), e.Summary))
		}
	}
	want := []string{"traffic done 2s: wrote version 2", "release_started: release " + r.ID + " (v2) of pool green started by alice: ship v2",
		"release_finished: release " + r.ID + " (v2) of pool green finished by ci", "fallback: error rate 12%"}
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n got %q\nwant %q", got, want)
	}
}

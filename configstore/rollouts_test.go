package configstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/rollout"
)

func testRollout(name, id string) rollout.Rollout {
	return rollout.Rollout{
		ID: id, Deployment: name, Target: "pool:green", Steps: []float64{10, 100},
		Bake: gateway.Duration(time.Minute), Author: "alice", State: rollout.Running, Step: -1,
	}
}

func TestRolloutLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	if _, _, err := s.GetRollout(ctx, "shop"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRollout before any = %v, want ErrNotFound", err)
	}

	first := testRollout("shop", "r-1")
	rev, err := s.PutRollout(ctx, first, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, gotRev, err := s.GetRollout(ctx, "shop")
	if err != nil || got.ID != "r-1" || gotRev != rev || got.Updated.IsZero() || got.Created.IsZero() || got.Step != -1 {
		t.Fatalf("GetRollout = %+v rev %d, %v; want r-1 at rev %d", got, gotRev, err, rev)
	}

	started := rev
	steps := []struct {
		name     string
		r        rollout.Rollout
		ifModRev func() int64
		err      error
	}{
		{"second active rollout", testRollout("shop", "r-2"), func() int64 { return 0 }, ErrConflict},
		{"stale revision", testRollout("shop", "r-1"), func() int64 { return rev - 1 }, ErrConflict},
		{"step recorded", func() rollout.Rollout { r := first; r.Step = 0; return r }(), func() int64 { return rev }, nil},
		{"the old revision no longer matches", first, func() int64 { return started }, ErrConflict},
		{"paused", func() rollout.Rollout { r := first; r.State = rollout.Paused; return r }(), func() int64 { return rev }, nil},
		{"paused is still active", testRollout("shop", "r-2"), func() int64 { return 0 }, ErrConflict},
	}
	for _, st := range steps {
		newRev, err := s.PutRollout(ctx, st.r, st.ifModRev())
		if !errors.Is(err, st.err) {
			t.Fatalf("%s: PutRollout = %v, want %v", st.name, err, st.err)
		}
		if err == nil {
			rev = newRev
		}
	}

	// Once finished, a new rollout replaces it.
	got, rev, err = s.GetRollout(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	got.State = rollout.Aborted
	if _, err := s.PutRollout(ctx, got, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRollout(ctx, testRollout("shop", "r-3"), 0); err != nil {
		t.Fatalf("PutRollout after an aborted one = %v", err)
	}
	if got, _, _ := s.GetRollout(ctx, "shop"); got.ID != "r-3" {
		t.Errorf("current rollout %s, want r-3", got.ID)
	}

	var fe *gateway.FieldError
	if _, err := s.PutRollout(ctx, testRollout("no spaces", "r-4"), 0); !errors.As(err, &fe) || fe.Field != "name" {
		t.Errorf("PutRollout of a bad name = %v, want a *FieldError of name", err)
	}
}

func TestListRollouts(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"shop", "api", "web"} {
		if _, err := s.PutRollout(ctx, testRollout(name, "r-"+name), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Keys the store did not write are skipped.
	if _, err := s.client.Put(ctx, s.Prefix()+"/rollouts/junk", "{"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Put(ctx, s.Prefix()+"/rollouts/other", `{"deployment":"shop"}`); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range list {
		names = append(names, r.Deployment)
		if r.ModRev == 0 {
			t.Errorf("%s listed without its revision", r.Deployment)
		}
	}
	if got := strings.Join(names, ","); got != "api,shop,web" {
		t.Errorf("ListRollouts = %s, want api,shop,web", got)
	}
	if !strings.HasPrefix(s.Prefix(), "/test/") {
		t.Errorf("Prefix() = %q", s.Prefix())
	}
}

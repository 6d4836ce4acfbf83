package configstore

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/release"
)

func newRelease(name, deployment string) release.Release {
	return release.Release{Name: name, Deployment: deployment, Pool: "green", Label: "v2.1+build 7",
		Upstreams: []string{"10.0.0.2:8080"}, Databases: map[string]release.SchemaNeed{"main": {Version: 5, MinVersion: 4}},
		Before: release.State{DeploymentVersion: 3, Weights: map[string]float64{"blue": 100, "green": 0}}}
}

func TestReleaseLifecycle(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 29, 20, 45, 12, 0, time.UTC)
	s := newStore(t, WithClock(func() time.Time { return at }))
	ctx := t.Context()

	r, rev, err := s.CreateRelease(ctx, newRelease("v2", "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.ID, "r-20261129-204512-") || !ValidReleaseID(r.ID) || r.Status != release.Open || !r.Started.Equal(at) || rev == 0 {
		t.Fatalf("CreateRelease = %+v, rev %d; want an open release with an id of its start", r, rev)
	}
	got, gotRev, err := s.GetRelease(ctx, r.ID)
	if err != nil || gotRev != rev || got.Name != "v2" || got.Databases["main"].MinVersion != 4 || got.Before.Weights["blue"] != 100 {
		t.Fatalf("GetRelease = %+v, %d, %v; want the release at rev %d", got, gotRev, err, rev)
	}

	// A second open release of the same deployment names the open one
	// and writes nothing; another deployment's is independent.
	var fe *gateway.FieldError
	if _, _, err := s.CreateRelease(ctx, newRelease("v3", "shop")); !errors.As(err, &fe) || fe.Field != "deployment" || !strings.Contains(fe.Want, r.ID) {
		t.Fatalf("second open release = %v, want a *FieldError of deployment naming %s", err, r.ID)
	}
	if list, err := s.ListReleases(ctx, "shop"); err != nil || len(list) != 1 {
		t.Fatalf("ListReleases after the refusal = %v, %v; want the one release", list, err)
	}
	other, _, err := s.CreateRelease(ctx, newRelease("v2", "web"))
	if err != nil {
		t.Fatal(err)
	}

	// Compare-and-swap on the record.
	r.Status = release.Finished
	r.After = &release.State{DeploymentVersion: 5}
	if _, err := s.PutRelease(ctx, r, rev-1); !errors.Is(err, ErrConflict) {
		t.Fatalf("PutRelease at a stale rev = %v, want ErrConflict", err)
	}
	newRev, err := s.PutRelease(ctx, r, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRelease(ctx, r, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("PutRelease at the replaced rev = %v, want ErrConflict", err)
	}
	if got, gotRev, err := s.GetRelease(ctx, r.ID); err != nil || gotRev != newRev || got.Status != release.Finished || got.After.DeploymentVersion != 5 {
		t.Fatalf("after PutRelease: %+v, %d, %v", got, gotRev, err)
	}

	// Finished, the deployment may open the next one, but not under a
	// name still in use.
	if _, _, err := s.CreateRelease(ctx, newRelease("v2", "shop")); !errors.As(err, &fe) || fe.Field != "name" || !strings.Contains(fe.Want, r.ID) {
		t.Fatalf("reused name = %v, want a *FieldError of name naming %s", err, r.ID)
	}
	at = at.Add(time.Minute)
	next, _, err := s.CreateRelease(ctx, newRelease("v3", "shop"))
	if err != nil {
		t.Fatal(err)
	}

	list, err := s.ListReleases(ctx, "shop")
	if err != nil || len(list) != 2 || list[0].ID != next.ID || list[1].ID != r.ID {
		t.Fatalf("ListReleases(shop) = %v, %v; want %s then %s", list, err, next.ID, r.ID)
	}
	if all, err := s.ListReleases(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("ListReleases(\"\") = %v, %v; want 3", all, err)
	}

	// Found by id or by name; a name in two deployments needs the id.
	if f, _, err := s.FindRelease(ctx, next.ID); err != nil || f.ID != next.ID {
		t.Errorf("FindRelease(id) = %+v, %v", f, err)
	}
	if f, _, err := s.FindRelease(ctx, "v3"); err != nil || f.ID != next.ID {
		t.Errorf("FindRelease(v3) = %+v, %v", f, err)
	}
	if _, _, err := s.FindRelease(ctx, "v2"); !errors.As(err, &fe) || !strings.Contains(fe.Want, "shop") || !strings.Contains(fe.Want, other.ID) {
		t.Errorf("FindRelease(v2) = %v, want a *FieldError listing shop and web", err)
	}
	var nf *NotFoundError
	for _, q := range []string{"v9", "r-20261129-204512-ffff"} {
		if _, _, err := s.FindRelease(ctx, q); !errors.As(err, &nf) || nf.Kind != "release" {
			t.Errorf("FindRelease(%s) = %v, want a *NotFoundError of a release", q, err)
		}
	}
	if _, _, err := s.GetRelease(ctx, "r-20261129-204512-ffff"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRelease(unknown) = %v, want ErrNotFound", err)
	}
}

func TestReleaseRejected(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	tests := []struct {
		name  string
		edit  func(*release.Release)
		field string
	}{
		{"bad name", func(r *release.Release) { r.Name = "no spaces" }, "name"},
		{"no deployment", func(r *release.Release) { r.Deployment = "" }, "deployment"},
		{"bad pool", func(r *release.Release) { r.Pool = "a/b" }, "pool"},
		{"bad label", func(r *release.Release) { r.Label = "v2\x1b[2J" }, "label"},
		{"bad upstream", func(r *release.Release) { r.Upstreams = []string{" "} }, "upstreams[0]"},
		{"bad database", func(r *release.Release) { r.Databases = map[string]release.SchemaNeed{"a b": {}} }, "databases"},
		{"negative version", func(r *release.Release) { r.Databases = map[string]release.SchemaNeed{"main": {Version: -1}} }, "databases.main.version"},
		{"min above version", func(r *release.Release) {
			r.Databases = map[string]release.SchemaNeed{"main": {Version: 3, MinVersion: 4}}
		}, "databases.main.min_version"},
		{"not open", func(r *release.Release) { r.Status = release.Finished }, "status"},
		{"unknown status", func(r *release.Release) { r.Status = "paused" }, "status"},
		{"long reason", func(r *release.Release) { r.Reason = strings.Repeat("x", gateway.MaxReason+1) }, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelease("v2", "shop")
			tt.edit(&r)
			var fe *gateway.FieldError
			if _, _, err := s.CreateRelease(ctx, r); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("CreateRelease = %v, want a *FieldError of %s", err, tt.field)
			}
		})
	}
	if list, err := s.ListReleases(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("after the refusals: %v, %v; want nothing written", list, err)
	}
	var fe *gateway.FieldError
	for _, id := range []string{"", "r-1", "r-20261399-204512-3f9a", "r-20261129-204512-3F9A"} {
		if _, _, err := s.GetRelease(ctx, id); !errors.As(err, &fe) || fe.Field != "id" {
			t.Errorf("GetRelease(%q) = %v, want a *FieldError of id", id, err)
		}
	}
	if _, _, err := s.FindRelease(ctx, "no such/thing"); !errors.As(err, &fe) || fe.Field != "release" {
		t.Errorf("FindRelease of a bad name = %v, want a *FieldError of release", err)
	}
	if _, err := s.PutRelease(ctx, release.Release{ID: "x"}, 0); !errors.As(err, &fe) || fe.Field != "id" {
		t.Errorf("PutRelease without an id = %v, want a *FieldError of id", err)
	}
}

// TestReleaseOneOpen: concurrent starts for one deployment open exactly
// one release.
func TestReleaseOneOpen(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, _, errs[i] = s.CreateRelease(ctx, newRelease("v"+string(rune('a'+i)), "shop"))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var fe *gateway.FieldError
		switch {
		case err == nil:
			ok++
		case !errors.As(err, &fe) || fe.Field != "deployment":
			t.Errorf("CreateRelease = %v, want success or a *FieldError of deployment", err)
		}
	}
	if list, err := s.ListReleases(ctx, "shop"); ok != 1 || err != nil || len(list) != 1 {
		t.Errorf("%d starts succeeded, store holds %v (%v); want exactly one", ok, list, err)
	}
}

// TestReleaseFenced: a deposed leader's release write is ErrNotLeader.
func TestReleaseFenced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	r, rev, err := s.CreateRelease(ctx, newRelease("v2", "shop"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lead(ctx, "driver", "a", LeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r.Status = release.RollingBack
	if rev, err = s.PutRelease(ctx, r, rev, Fence(l)); err != nil {
		t.Fatalf("fenced PutRelease by the leader = %v", err)
	}
	l.Resign()
	r.Status = release.RolledBack
	if _, err := s.PutRelease(ctx, r, rev, Fence(l)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("fenced PutRelease after resigning = %v, want ErrNotLeader", err)
	}
	if got, _, err := s.GetRelease(ctx, r.ID); err != nil || got.Status != release.RollingBack {
		t.Errorf("after the refused write: %v, %v; want rolling_back", got.Status, err)
	}
}

func TestDeleteRelease(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	r, rev, err := s.CreateRelease(ctx, newRelease("v2", "shop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRelease(ctx, r.ID, rev-1); !errors.Is(err, ErrConflict) {
		t.Errorf("DeleteRelease at a stale rev = %v, want ErrConflict", err)
	}
	if err := s.DeleteRelease(ctx, r.ID, rev); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRelease(ctx, r.ID, rev); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteRelease again = %v, want ErrNotFound", err)
	}
	// Its deployment may open a release again.
	if _, _, err := s.CreateRelease(ctx, newRelease("v2", "shop")); err != nil {
		t.Errorf("CreateRelease after the delete = %v", err)
	}
}

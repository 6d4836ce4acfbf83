package configstore

import (
	"testing"

	"github.com/a8e2c47e/switchback/release"
)

// TestReleasesMark: the mark moves with every write and deletion of a
// release record, and with nothing else.
func TestReleasesMark(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	mark := func() ReleasesMark {
		t.Helper()
		m, err := s.ReleasesMark(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m0 := mark()
	if m0 != (ReleasesMark{}) {
		t.Fatalf("no releases: mark %+v, want zero", m0)
	}
	r, rev, err := s.CreateRelease(ctx, release.Release{Name: "v2", Deployment: "shop", Pool: "green"})
	if err != nil {
		t.Fatal(err)
	}
	m1 := mark()
	if m1.Count != 1 || m1.LastWrite != rev {
		t.Fatalf("after create: %+v, want count 1 at %d", m1, rev)
	}
	if err := s.ReportApplied(ctx, "gw-a", "shop", 1); err != nil { // another key: no move
		t.Fatal(err)
	}
	if m := mark(); m != m1 {
		t.Errorf("an unrelated write moved the mark: %+v → %+v", m1, m)
	}
	r.Status = release.Finished
	if _, err := s.PutRelease(ctx, r, rev); err != nil {
		t.Fatal(err)
	}
	if m := mark(); m.Count != 1 || m.LastWrite <= m1.LastWrite {
		t.Errorf("after an update: %+v, want a later write than %+v", m, m1)
	}
}

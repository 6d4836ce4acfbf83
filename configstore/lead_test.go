package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// campaign runs s.Lead in a goroutine the test owns, until ctx ends; the
// leader arrives on the channel it returns (nil if Lead failed). A leader
// the test never took is resigned when the test ends.
func campaign(t *testing.T, s *Store, ctx context.Context, candidate string, opts ...LeadOption) <-chan *Leader {
	t.Helper()
	ch := make(chan *Leader, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := s.Lead(ctx, "driver", candidate, opts...)
		if err != nil {
			l = nil
		}
		ch <- l
	}()
	t.Cleanup(func() {
		<-done
		select {
		case l := <-ch:
			if l != nil {
				l.Resign()
			}
		default:
		}
	})
	return ch
}

// elected waits for a campaign's leader.
func elected(t *testing.T, ch <-chan *Leader, within time.Duration) *Leader {
	t.Helper()
	select {
	case l := <-ch:
		if l == nil {
			t.Fatal("Lead failed")
		}
		t.Cleanup(l.Resign)
		return l
	case <-time.After(within):
		t.Fatalf("not elected within %s", within)
		return nil
	}
}

// TestLeadFenced: a leader whose lease ended without it noticing writes
// nothing, documents or records, and its fenced writes say ErrNotLeader;
// the next leader's writes land.
func TestLeadFenced(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	bootstrap(t, s, "shop")
	for _, cfg := range []string{`{"limit": 1}`, `{"limit": 2}`} {
		if _, err := s.PutService(ctx, "payments", json.RawMessage(cfg), 0, testMeta("setup")); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.Lead(ctx, "driver", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Resign()
	wrote(t)(s.Update(ctx, "shop", 0, testMeta("led"), setWeights(10), Fence(first)))

	second := campaign(t, s, ctx, "b")
	// The first leader's lease ends behind its back (etcd expired it while
	// the process was paused, say).
	if _, err := s.client.Revoke(ctx, first.session.Lease()); err != nil {
		t.Fatal(err)
	}
	next := elected(t, second, 20*time.Second)
	if _, err := s.Update(ctx, "shop", 0, testMeta("deposed"), setWeights(20), Fence(first)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's Update = %v, want ErrNotLeader", err)
	}
	if _, err := s.PutRecord(ctx, "rollouts", "shop", testRecord{"deposed"}, 0, Fence(first)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's PutRecord = %v, want ErrNotLeader", err)
	}
	if v := currentVersion(t, s, "shop"); v != 2 {
		t.Errorf("version %d after the deposed leader's write, want 2", v)
	}
	if _, err := s.RestoreService(ctx, "payments", 1, 0, testMeta("deposed"), Fence(first)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("deposed leader's RestoreService = %v, want ErrNotLeader", err)
	}
	if sd, err := s.GetService(ctx, "payments"); err != nil || sd.Meta.Version != 2 {
		t.Errorf("service payments at %d (%v) after the deposed leader's restore, want 2", sd.Meta.Version, err)
	}
	if _, err := s.RestoreService(ctx, "payments", 1, 0, testMeta("new leader"), Fence(next)); err != nil {
		t.Errorf("new leader's RestoreService = %v", err)
	}
	wrote(t)(s.Update(ctx, "shop", 0, testMeta("new leader"), setWeights(30), Fence(next)))
	if _, err := s.PutRecord(ctx, "rollouts", "shop", testRecord{"new leader"}, 0, Fence(next)); err != nil {
		t.Errorf("new leader's PutRecord = %v", err)
	}
}

// TestResignHandsOver: a campaign whose context ends returns; a leader
// that resigns deletes its key, so the next candidate takes over at once
// rather than after the lease's TTL.
func TestResignHandsOver(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := t.Context()
	first, err := s.Lead(ctx, "driver", "a", LeaseTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	waiting, stop := context.WithCancel(ctx)
	cancelled := campaign(t, s, waiting, "c")
	stop()
	select {
	case l := <-cancelled:
		if l != nil {
			t.Error("a cancelled campaign was elected")
		}
	case <-time.After(10 * time.Second):
		t.Error("a cancelled campaign did not return")
	}

	second := campaign(t, s, ctx, "b", LeaseTTL(time.Hour))
	first.Resign()
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Error("Done not closed after Resign")
	}
	// Within a TTL of an hour, only the resign can have handed over.
	elected(t, second, 20*time.Second)
	if _, err := s.Lead(ctx, "no such role!", "a"); err == nil {
		t.Error("Lead with a bad role succeeded")
	}
}

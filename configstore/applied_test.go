package configstore

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// TestWatchApplied: reports written after the call arrive, for the
// deployment asked about only, in order per instance; the channel closes
// when the context ends. (The store re-writes its reports once it holds a
// lease, so a report may arrive twice, and one written just before the
// call may arrive as such a re-write.)
func TestWatchApplied(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.WatchApplied(wctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	writes := []struct {
		instance, name string
		version        uint64
	}{
		{"gw-1:9180", "shop", 2},
		{"gw-2:9180", "other", 7},
		{"gw-2:9180", "shop", 2},
		{"gw-1:9180", "shop", 3},
	}
	for _, w := range writes {
		if err := s.ReportApplied(ctx, w.instance, w.name, w.version); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]uint64{"gw-1:9180": {2, 3}, "gw-2:9180": {2}}
	got := map[string][]uint64{}
	for !maps.EqualFunc(got, want, slices.Equal) {
		select {
		case r := <-ch:
			if seen := got[r.Instance]; len(seen) == 0 || seen[len(seen)-1] != r.Version {
				got[r.Instance] = append(seen, r.Version)
			}
			if len(got[r.Instance]) > len(want[r.Instance]) {
				t.Fatalf("reports %v, want %v", got, want)
			}
		case <-time.After(testharness.Wait):
			t.Fatalf("after %v, nothing more within %s; want %v", got, testharness.Wait, want)
		}
	}
	cancel()
	for range ch { // closes once the watch has ended
	}

	var fe *gateway.FieldError
	if _, err := s.WatchApplied(ctx, "no/such"); !errors.As(err, &fe) || fe.Field != "name" {
		t.Errorf("WatchApplied(bad name) = %v, want a FieldError for name", err)
	}
}

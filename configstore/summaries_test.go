package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness"
)

// TestSummaries: each instance's summary is one key, replaced by its next
// publication, under the instance's lease: a report and a summary share
// it, in either order, and Close takes both away.
func TestSummaries(t *testing.T) {
	t.Parallel()
	a, b := newStore(t), newStore(t)
	// b shares a's keys (same prefix) as a second instance would.
	b.prefix = a.prefix
	ctx := t.Context()
	type sum struct{ N int }
	if err := a.PublishSummary(ctx, "gw-a", sum{1}); err != nil {
		t.Fatal(err)
	}
	if err := a.ReportApplied(ctx, "gw-a", "shop", 3); err != nil { // the same lease after a summary
		t.Fatal(err)
	}
	if err := a.PublishSummary(ctx, "gw-a", sum{2}); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishSummary(ctx, "gw-b", sum{7}); err != nil {
		t.Fatal(err)
	}
	got := readSummaries(t, a)
	if len(got) != 2 || got["gw-a"].N != 2 || got["gw-b"].N != 7 {
		t.Fatalf("summaries %+v; want gw-a's second and gw-b's", got)
	}

	var fe *gateway.FieldError
	if err := a.PublishSummary(ctx, "a/b", sum{}); !errors.As(err, &fe) || fe.Field != "instance" {
		t.Errorf("PublishSummary(a/b) = %v, want a FieldError for instance", err)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readSummaries(t, a); len(got) != 1 || got["gw-a"].N != 2 {
		t.Errorf("after gw-b closed: %+v; want gw-a's only", got)
	}
	if err := b.PublishSummary(ctx, "gw-b", sum{8}); err == nil {
		t.Error("PublishSummary after Close succeeded")
	}
}

func readSummaries(t *testing.T, s *Store) map[string]struct{ N int } {
	t.Helper()
	raw, err := s.Summaries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]struct{ N int }{}
	for inst, b := range raw {
		var v struct{ N int }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		out[inst] = v
	}
	return out
}

// TestFollowSummaries: a reader sees every summary as it is published,
// and sees it go with its instance.
func TestFollowSummaries(t *testing.T) {
	t.Parallel()
	a, b := newStore(t), newStore(t)
	b.prefix = a.prefix
	ctx := t.Context()
	if err := a.PublishSummary(ctx, "gw-a", struct{ N int }{1}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]string{}
	done := make(chan error, 1)
	fctx, cancel := context.WithCancel(ctx)
	go func() {
		done <- a.FollowSummaries(fctx, func(inst string, v []byte) {
			mu.Lock()
			defer mu.Unlock()
			seen[inst] = string(v)
		})
	}()
	got := func(inst string) string {
		mu.Lock()
		defer mu.Unlock()
		return seen[inst]
	}
	testharness.WaitFor(t, "gw-a's summary listed", func() bool { return got("gw-a") == `{"N":1}` })
	if err := b.PublishSummary(ctx, "gw-b", struct{ N int }{2}); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-b's summary followed", func() bool { return got("gw-b") == `{"N":2}` })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	testharness.WaitFor(t, "gw-b's summary gone with its lease", func() bool {
		mu.Lock()
		defer mu.Unlock()
		v, ok := seen["gw-b"]
		return ok && v == ""
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("FollowSummaries returned %v, want context.Canceled", err)
	}
}

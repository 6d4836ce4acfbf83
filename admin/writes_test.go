package admin

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// TestFlipCost: a flip over the API costs one etcd read and one
// transaction: the write's Result says what it replaced and whether it
// wrote, so neither the handler nor its audit record reads again.
func TestFlipCost(t *testing.T) {
	var counts configstore.OpCounts
	h := newHarnessOn(t, etcdtest.NewStore(t, configstore.WithOpCounts(&counts)), nil)
	gets, txns := counts.Gets.Load(), counts.Txns.Load()
	r := h.do("POST", "/api/v1/deployments/shop/flip", `{"reason": "ship green"}`)
	if r.status != http.StatusOK {
		t.Fatalf("flip: %d %s", r.status, r.body)
	}
	if g, x := counts.Gets.Load()-gets, counts.Txns.Load()-txns; g != 1 || x != 1 {
		t.Errorf("a flip cost %d reads and %d transactions, want 1 and 1", g, x)
	}
	if p, d := counts.Puts.Load(), counts.Deletes.Load(); p != 0 || d != 0 {
		t.Errorf("a flip made %d puts and %d deletes outside its transaction, want none", p, d)
	}
	if rec := h.audit.last(t); rec.From != 1 || rec.Version != 2 || len(rec.Changes) != 2 {
		t.Errorf("audit %+v, want version 1 → 2 with the two weights changed", rec)
	}
}

// TestRollbackProtectsNothing: after live blue, a flip to green and a
// rollback, the new version has exactly version 1's content (the diff is
// empty) and green, which the rollback took off traffic, is no protected
// rollback target: replacing its upstreams is not refused.
func TestRollbackProtectsNothing(t *testing.T) {
	h := newHarness(t, nil)
	for _, step := range []string{"flip", "rollback"} {
		if r := h.do("POST", "/api/v1/deployments/shop/"+step, `{}`); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", step, r.status, r.body)
		}
	}
	var diff DiffResult
	h.do("GET", "/api/v1/deployments/shop/diff?from=1&to=3", "").decode(t, &diff)
	if diff.To != 3 || len(diff.Changes) != 0 {
		t.Errorf("diff between version 1 and its rollback = %+v, want no changes", diff)
	}
	if doc := h.current("shop"); doc.Retained != nil {
		t.Errorf("after the rollback retained = %v, want none", doc.Retained)
	}
	if r := h.do("PUT", "/api/v1/deployments/shop/pools/green", `{"upstreams": ["127.0.0.1:9012"], "release": "v1.1.1"}`); r.status != http.StatusOK {
		t.Errorf("replacing green after the rollback: %d %s, want 200", r.status, r.body)
	}
}

// TestConcurrentWritersWithoutIfMatch: writers without If-Match that touch
// different flags all succeed, however they interleave, and every change
// is there at the end: a lost compare-and-swap is retried, not a 409.
func TestConcurrentWritersWithoutIfMatch(t *testing.T) {
	h := newHarness(t, nil)
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range 3 {
				body := fmt.Sprintf(`{"percent": %d}`, 10*(j+1))
				if r := h.do("PUT", fmt.Sprintf("/api/v1/deployments/shop/flags/f%d", i), body); r.status != http.StatusOK {
					t.Errorf("writer %d: %d %s, want 200", i, r.status, r.body)
				}
			}
		})
	}
	wg.Wait()
	doc := h.current("shop")
	for i := range writers {
		if f, ok := doc.Config.Flags[fmt.Sprintf("f%d", i)]; !ok || f.Percent != 30 {
			t.Errorf("flag f%d = %+v, %v; want 30%%", i, f, ok)
		}
	}
	if want := uint64(1 + 3*writers); doc.Meta.Version != want {
		t.Errorf("version %d, want %d (one per write)", doc.Meta.Version, want)
	}
	for _, rec := range h.audit.all() {
		if rec.Status != http.StatusOK || rec.Version != rec.From+1 || len(rec.Changes) != 1 {
			t.Errorf("audit %+v, want each write one change on the version it replaced", rec)
		}
	}
}

// TestStoreErrorsMapped: the store's typed errors reach the API as their
// status and field, read with errors.As.
func TestStoreErrorsMapped(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		field  string
	}{
		{"stale If-Match", &configstore.ConflictError{Deployment: "shop", Want: 3, Current: 7}, http.StatusConflict, "If-Match"},
		{"record changed", &configstore.ConflictError{Deployment: "shop", Kind: "rollouts"}, http.StatusConflict, ""},
		{"no deployment", &configstore.NotFoundError{Deployment: "shop"}, http.StatusNotFound, "name"},
		{"no version", fmt.Errorf("restore: %w", &configstore.NotFoundError{Deployment: "shop", What: "version 9"}), http.StatusNotFound, ""},
		{"invalid", &gateway.FieldError{Field: "weights", Value: "x", Want: "y"}, http.StatusBadRequest, "weights"},
		{"unavailable", fmt.Errorf("%w: lost until the deadline", configstore.ErrUnavailable), http.StatusServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classify(tt.err)
			if e.status != tt.status || e.field != tt.field {
				t.Errorf("classify(%v) = %d field %q, want %d field %q", tt.err, e.status, e.field, tt.status, tt.field)
			}
			if tt.status == http.StatusServiceUnavailable && e.retryAfter == 0 {
				t.Error("a 503 without Retry-After")
			}
		})
	}
	if e := classify(notFoundField(&configstore.NotFoundError{Deployment: "shop", What: "version 9"}, "version")); e.field != "version" {
		t.Errorf("a missing version answers field %q, want version", e.field)
	}
}

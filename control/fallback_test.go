package control

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/guard"
)

// TestFallBack writes judgements made by hand, one after the other, as
// the guard's loop hands them over: a refusal is an event only, a
// fallback is a version on top of the one judged and starts the cooldown,
// a second instance's fallback of the same version writes nothing, and an
// unreachable store is not tried.
func TestFallBack(t *testing.T) {
	h := newHarness(t)
	var reachable atomic.Bool
	reachable.Store(true)
	var wrote []uint64
	var counted []string
	ctl, err := New(Options{Store: h.store, Instance: "gw-a", Now: h.clock, Reachable: reachable.Load,
		Wrote:    func(d configstore.Document) { wrote = append(wrote, d.Meta.Version) },
		Recorded: func(ev configstore.Event) { counted = append(counted, ev.Kind) }})
	if err != nil {
		t.Fatal(err)
	}
	// shop is at blue 100, green 0: put green at 30 so there is something
	// to move.
	res, err := h.store.Update(t.Context(), "shop", 1, configstore.Meta{Author: "test", Source: configstore.SourceAPI}, guard.Action{Kind: guard.Fallback, Name: "blue", Target: "green"}.Apply)
	if err != nil || res.Doc.Config.Weights["green"] != 100 {
		t.Fatalf("setting up: %v %v", res.Doc.Config.Weights, err)
	}

	greenOff := guard.Action{Kind: guard.Fallback, Subject: "pool:green", Name: "green", Target: "blue", Reason: "error rate 50.0% > 5.0%; traffic to blue", Version: 2}
	steps := []struct {
		name      string
		act       guard.Action
		reachable bool
		err       error // errors.Is
		version   uint64
		events    []string // recorded so far
		wrote     []uint64
	}{
		{"refused: an event, no version", guard.Action{Kind: guard.Refused, Subject: "pool:green", Name: "green", Reason: "not moving traffic: blue is failing too", Version: 2},
			true, nil, 2, []string{EventFallbackRefused}, nil},
		{"store unreachable: not tried", greenOff, false, configstore.ErrUnavailable, 2, []string{EventFallbackRefused}, nil},
		{"fallback on top of the version judged", greenOff, true, nil, 3, []string{EventFallbackRefused, EventFallback}, []uint64{3}},
		{"another instance's fallback of the same version: nothing", greenOff, true, configstore.ErrConflict, 3, []string{EventFallbackRefused, EventFallback}, []uint64{3}},
		{"flag off", guard.Action{Kind: guard.FlagOff, Subject: "flag:new_cart", Name: "new_cart", Reason: "error rate 9.0% > 5.0%; flag set to 0%", Version: 3},
			true, nil, 4, []string{EventFallbackRefused, EventFallback, EventFlagOff}, []uint64{3, 4}},
	}
	for _, st := range steps {
		reachable.Store(st.reachable)
		_, err := ctl.FallBack(t.Context(), "shop", st.act)
		if (st.err == nil) != (err == nil) || (st.err != nil && !errors.Is(err, st.err)) {
			t.Fatalf("%s: FallBack = %v, want %v", st.name, err, st.err)
		}
		doc := h.doc()
		if doc.Meta.Version != st.version {
			t.Errorf("%s: version %d, want %d", st.name, doc.Meta.Version, st.version)
		}
		if st.err == nil && doc.Meta.Version > 2 && (doc.Meta.Source != configstore.SourceGuard || doc.Meta.Author != "gw-a" || !doc.Meta.Fallback || doc.Meta.Reason != st.act.Reason) {
			t.Errorf("%s: version by %s %s (fallback %v): %q", st.name, doc.Meta.Source, doc.Meta.Author, doc.Meta.Fallback, doc.Meta.Reason)
		}
		var kinds []string
		for _, ev := range h.events() {
			kinds = append(kinds, ev.Kind)
			if ev.Instance != "gw-a" {
				t.Errorf("%s: event %+v not by gw-a", st.name, ev)
			}
		}
		if !equal(kinds, st.events) || !equal(counted, st.events) || !equal(wrote, st.wrote) {
			t.Errorf("%s: events %v (counted %v), applied %v; want %v, %v", st.name, kinds, counted, wrote, st.events, st.wrote)
		}
	}
	doc := h.doc()
	if doc.Config.Weights["green"] != 0 || doc.Config.Weights["blue"] != 100 || doc.Config.Flags["new_cart"].Percent != 0 {
		t.Errorf("weights %v, flags %v after the fallbacks", doc.Config.Weights, doc.Config.Flags)
	}
	if got := ctl.LastFallback("shop"); !got.Equal(doc.Meta.Time) || got.IsZero() {
		t.Errorf("cooldown from %v, want the last fallback's time %v", got, doc.Meta.Time)
	}

	// An event while the store is unreachable is counted and logged, not
	// written.
	reachable.Store(false)
	ctl.Record(t.Context(), configstore.Event{Deployment: "shop", Kind: EventFallbackRefused, Reason: "r"})
	if n := len(h.events()); n != 3 || len(counted) != 4 {
		t.Errorf("%d events stored, %d counted; want 3 stored, 4 counted", n, len(counted))
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEventKinds: the guard's event kinds are its actions' names.
func TestEventKinds(t *testing.T) {
	for kind, want := range map[guard.ActionKind]string{guard.Fallback: EventFallback, guard.FlagOff: EventFlagOff, guard.Refused: EventFallbackRefused} {
		if kind.String() != want {
			t.Errorf("%v records %q, want %q", kind, kind.String(), want)
		}
	}
}

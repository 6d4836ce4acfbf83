package affected

import (
	"slices"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/release"
)

func TestRuleMatches(t *testing.T) {
	ru := Rule{Release: "r1", Pool: "green", Flags: []string{"new_checkout"}}
	tests := []struct {
		pool, flags string
		want        bool
	}{
		{"green", "", true},
		{"green", "dark", true},
		{"blue", "", false},
		{"blue", "dark,new_checkout", true},
		{"blue", "new_checkout_old", false},
		{"blue", "new", false},
	}
	for _, tt := range tests {
		if got := ru.matches(tt.pool, tt.flags); got != tt.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tt.pool, tt.flags, got, tt.want)
		}
	}
	if (&Rule{Flags: []string{"x"}}).matches("", "") {
		t.Error("a rule without a pool matched a request of no pool")
	}
}

func TestRecorderStartsStopsAndKeeps(t *testing.T) {
	clock := time.Unix(1000, 0)
	r := NewRecorder(2, func() time.Time { return clock })
	if r.Active() != nil {
		t.Fatal("a new recorder has an active set")
	}
	r.Update([]Rule{{Release: "r1", Pool: "green"}}, 10)
	e := Entry{Time: clock, Method: "POST", Path: "/orders", Pool: "green"}
	s := r.Active()
	if s == nil || !s.Matches("green", "") || s.Matches("blue", "") {
		t.Fatalf("set %+v should match green only", s)
	}
	s.Add(e)
	s.Add(Entry{Time: clock, Method: "POST", Pool: "blue"})

	clock = clock.Add(time.Minute)
	r.Update(nil, 10) // r1 rolled back
	if r.Active() != nil {
		t.Error("a recorder with no rules still has an active set")
	}
	s.Add(e) // a request that loaded the old set finishes after the stop
	l, ok := r.Log("r1")
	if !ok || len(l.Entries) != 1 || l.Entries[0] != e || !l.Until.Equal(clock) || !l.Since.Equal(time.Unix(1000, 0)) {
		t.Fatalf("log of stopped r1 = %+v, %v; want its one entry, since 1000, until a minute later", l, ok)
	}
	if _, ok := r.Log("r9"); ok {
		t.Error("log of a release never recorded found")
	}

	// Only the last two stopped releases are kept.
	for _, id := range []string{"r2", "r3"} {
		r.Update([]Rule{{Release: id, Pool: "green"}}, 10)
		r.Update(nil, 10)
	}
	for id, want := range map[string]bool{"r1": false, "r2": true, "r3": true} {
		if _, ok := r.Log(id); ok != want {
			t.Errorf("Log(%s) kept = %v, want %v", id, ok, want)
		}
	}
}

func TestRules(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 29, 20, m, 0, 0, time.UTC) }
	rels := []release.Release{
		{ID: "r1", Deployment: "shop", Pool: "green", Status: release.Finished, Started: at(1),
			Before: release.State{Flags: map[string]float64{"a": 10}}, After: &release.State{Flags: map[string]float64{"a": 10}}},
		{ID: "r2", Deployment: "shop", Pool: "blue", Status: release.Finished, Started: at(2),
			Before: release.State{Flags: map[string]float64{"a": 10, "b": 50}},
			After:  &release.State{Flags: map[string]float64{"a": 50, "b": 50, "c": 20}}},
		{ID: "r3", Deployment: "shop", Pool: "green", Status: release.RolledBack, Started: at(3)},
		{ID: "r4", Deployment: "shop", Pool: "", Status: release.Open, Started: at(4),
			Before: release.State{Flags: map[string]float64{"a": 50, "b": 50, "c": 0, "d": 0}}},
		{ID: "r0", Deployment: "shop", Pool: "blue", Status: release.Finished, Started: at(0)},
	}
	live := map[string]float64{"a": 50, "b": 50, "c": 0, "d": 5}
	got := Rules(rels, live)
	want := []Rule{
		// r1 records: r3, later on green, was rolled back.
		{Release: "r1", Pool: "green"},
		// a raised and still up; b not raised; c raised but lowered again.
		{Release: "r2", Pool: "blue", Flags: []string{"a"}},
		// open: the live percentage counts; it raised d.
		{Release: "r4", Flags: []string{"d"}},
		// r0: superseded on blue by r2.
	}
	if !slices.EqualFunc(got, want, func(a, b Rule) bool {
		return a.Release == b.Release && a.Pool == b.Pool && slices.Equal(a.Flags, b.Flags)
	}) {
		t.Errorf("Rules =\n%+v\nwant\n%+v", got, want)
	}
}

// BenchmarkRecord is the request path's cost: for a GET, the method check
// alone (nothing loaded, locked or allocated); for a POST, the set's load,
// the match and one append.
func BenchmarkRecord(b *testing.B) {
	r := NewRecorder(0, nil)
	r.Update([]Rule{{Release: "r1", Pool: "green", Flags: []string{"new_checkout"}}}, DefaultCapacity)
	record := func(method string) {
		if IsRead(method) {
			return
		}
		s := r.Active()
		if s == nil || !s.Matches("green", "dark") {
			return
		}
		s.Add(Entry{Time: time.Now(), Subject: "u42", Method: method, Path: "/orders", Status: 201,
			RequestID: "0f8c2a5e-4a4e-4b8e-9a47-2f1d7c1e3b6a", Pool: "green", Flags: "dark"})
	}
	for _, method := range []string{"GET", "POST"} {
		b.Run(method, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				record(method)
			}
		})
	}
	b.Run("POST/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				record("POST")
			}
		})
	})
}

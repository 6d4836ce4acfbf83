package guard

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestMergeWindowIsOneBigInstance: three instances each seeing a third of
// the traffic merge into the window one instance seeing all of it has.
func TestMergeWindowIsOneBigInstance(t *testing.T) {
	snap := snapshot(t, map[string]float64{"blue": 50, "green": 50}, map[string]float64{"cart": 50}, testGuard())
	traffic := []traffic{
		{pool: "blue", n: 30, errs: 1, latency: 5 * time.Millisecond},
		{pool: "green", n: 24, errs: 12, flags: 1, latency: 80 * time.Millisecond},
		{pool: "green", n: 6, latency: 700 * time.Millisecond},
		{pool: "blue", n: 9, flags: 1, latency: 20 * time.Millisecond},
	}
	all := windowOf(t, snap, traffic)

	var parts []Summary
	for i := range 3 {
		reg := NewRegistry()
		m := reg.Meter([]string{"blue", "green"}, snap.FlagNames())
		for _, r := range traffic {
			p, _ := snap.PoolIndex(r.pool)
			for k := range r.n {
				if k%3 == i {
					m.Record(p, r.flags, k < r.errs, r.latency)
				}
			}
		}
		// Through JSON, as published.
		b, err := json.Marshal(reg.Summary())
		if err != nil {
			t.Fatal(err)
		}
		var s Summary
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s)
	}
	if got := MergeWindow(parts[0], parts[1:]...); !reflect.DeepEqual(got, all) {
		t.Errorf("merged %+v\nwant  %+v", got, all)
	}
	if one := MergeWindow(parts[0]); one.Pools["green"].Requests != 10 {
		t.Errorf("one instance alone sees %d of green's 30 requests, want 10", one.Pools["green"].Requests)
	}
	// A judgement on the fleet's window reaches min_requests that none of
	// the instances reaches alone.
	p := Compile(testGuard())
	p.MinRequests, p.Baseline = 25, 0
	if v := p.Check(MergeWindow(parts[0]).Pools["green"], Stats{}, false); v.Breach {
		t.Errorf("one instance judged %+v on 10 requests", v)
	}
	if v := p.Check(MergeWindow(parts[0], parts[1:]...).Pools["green"], Stats{}, false); !v.Breach {
		t.Errorf("fleet verdict %+v, want a breach on 30 requests", v)
	}
}

func TestPeers(t *testing.T) {
	now := time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC)
	s := Summary{Pools: map[string]SeriesSummary{"blue": {Buckets: [][2]uint64{{50, 3}}}}}
	published := map[string]FleetSummary{
		"gw-a":     {Time: now, Deployments: map[string]Summary{"checkout": s}},
		"gw-b":     {Time: now.Add(-time.Second), Deployments: map[string]Summary{"checkout": s}},
		"gw-c":     {Time: now.Add(-3 * time.Second), Deployments: map[string]Summary{"checkout": s}},
		"gw-other": {Time: now, Deployments: map[string]Summary{"search": s}},
	}
	merged, fleet, stale := Peers("gw-a", published, "checkout", now, 2*time.Second)
	if len(merged) != 1 || !slices.Equal(fleet, []string{"gw-b"}) {
		t.Errorf("merged %d from %v; want gw-b only (gw-a is self, gw-c stale, gw-other serves another deployment)", len(merged), fleet)
	}
	if len(stale) != 1 || !stale["gw-c"].Equal(now.Add(-3*time.Second)) {
		t.Errorf("left out %v; want gw-c with its summary's time", stale)
	}
}

// BenchmarkFleetWindow is what a judgement on three instances' windows
// costs each slot: this instance's summary, merged with two others'.
func BenchmarkFleetWindow(b *testing.B) {
	reg := NewRegistry()
	m := reg.Meter([]string{"blue", "green"}, []string{"cart", "pay"})
	for i := range 3000 {
		m.Record(i%2, uint64(i%4), i%50 == 0, time.Duration(1+i%200)*time.Millisecond)
	}
	peer := reg.Summary()
	b.ReportAllocs()
	for b.Loop() {
		_ = MergeWindow(reg.Summary(), peer, peer)
	}
}

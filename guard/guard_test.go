package guard

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	prev := -1
	for _, d := range []time.Duration{0, time.Microsecond, 3 * time.Microsecond, 100 * time.Microsecond,
		time.Millisecond, 1500 * time.Microsecond, 10 * time.Millisecond, 499 * time.Millisecond, time.Second, time.Hour} {
		b := latencyBucket(d)
		if b < prev {
			t.Errorf("latencyBucket(%v) = %d, below the bucket of a smaller latency (%d)", d, b, prev)
		}
		prev = b
		if d >= time.Microsecond && d < time.Minute {
			// The bucket's upper bound is at most ~19% (one quarter octave)
			// above the latency.
			up := bucketUpper(b)
			if up < d || float64(up) > 1.19*float64(d)+float64(time.Microsecond) {
				t.Errorf("latency %v: bucket %d reports %v, want within +19%%", d, b, up)
			}
		}
	}
}

func TestMeterWindow(t *testing.T) {
	reg := NewRegistry()
	m := reg.Meter([]string{"blue", "green"}, []string{"f"})
	for i := range 100 {
		pool, flags := i%2, uint64(0)
		if i%4 == 0 {
			flags = 1
		}
		m.Record(pool, flags, pool == 1, time.Duration(i+1)*time.Millisecond)
	}
	w := reg.Stats()
	if got := w.Pools["blue"]; got.Requests != 50 || got.Errors != 0 {
		t.Errorf("blue = %+v, want 50 requests, 0 errors", got)
	}
	if got := w.Pools["green"]; got.Requests != 50 || got.Errors != 50 || got.ErrorRate() != 1 {
		t.Errorf("green = %+v, want 50 requests, all errors", got)
	}
	if off, on := w.Flags["f"].Off, w.Flags["f"].On; on.Requests != 25 || off.Requests != 75 {
		t.Errorf("flag f cohorts: off %d, on %d requests; want 75, 25", off.Requests, on.Requests)
	}
	// p95 of 1..100 ms is 95 ms; the histogram reports its bucket's upper
	// bound, at most 19% above.
	if p95 := w.Pools["blue"].P95; p95 < 90*time.Millisecond || p95 > 120*time.Millisecond {
		t.Errorf("blue p95 = %v, want about 95 ms", p95)
	}

	// A new version keeping pool blue and flag f keeps their windows; the
	// series of green goes once that version is live.
	m2 := reg.Meter([]string{"blue", "red"}, []string{"f"})
	if _, ok := reg.Stats().Pools["green"]; !ok {
		t.Error("green's series dropped before the version without it went live")
	}
	reg.Prune([]string{"blue", "red"}, []string{"f"})
	m2.Record(0, 0, false, time.Millisecond)
	w = reg.Stats()
	if w.Pools["blue"].Requests != 51 || w.Pools["red"].Requests != 0 {
		t.Errorf("after new meter: blue %d, red %d requests; want 51, 0", w.Pools["blue"].Requests, w.Pools["red"].Requests)
	}
	if _, ok := w.Pools["green"]; ok {
		t.Error("green, no longer a pool, still has a series")
	}

	// After a whole window of slots the old requests are gone.
	for range Slots {
		reg.Advance()
	}
	if got := reg.Stats().Pools["blue"].Requests; got != 0 {
		t.Errorf("after a full window, blue has %d requests, want 0", got)
	}
}

func TestPolicy(t *testing.T) {
	p := Policy{ErrorRate: 0.05, P95: 500 * time.Millisecond, MinRequests: 20, Baseline: 2}
	healthy := Stats{Requests: 1000, Errors: 5, P95: 50 * time.Millisecond}
	tests := []struct {
		name     string
		s, base  Stats
		baseDead bool // the baseline takes no traffic
		want     bool
		mentions string
	}{
		{"healthy", Stats{Requests: 500, Errors: 1, P95: 40 * time.Millisecond}, healthy, false, false, ""},
		{"all errors", Stats{Requests: 100, Errors: 100}, healthy, false, true, "error rate 100.0% > 5.0% and > 2× baseline 0.5%"},
		{"too few samples", Stats{Requests: 19, Errors: 19}, healthy, false, false, ""},
		{"shared fault", Stats{Requests: 100, Errors: 60}, Stats{Requests: 1000, Errors: 550}, false, false, ""},
		{"worse than shared fault", Stats{Requests: 100, Errors: 100}, Stats{Requests: 1000, Errors: 300}, false, true, "baseline 30.0%"},
		{"live baseline still filling", Stats{Requests: 100, Errors: 100}, Stats{Requests: 3}, false, false, ""},
		{"baseline takes no traffic", Stats{Requests: 100, Errors: 100}, Stats{}, true, true, "error rate 100.0% > 5.0% (100 requests"},
		{"slow", Stats{Requests: 100, P95: time.Second}, healthy, false, true, "p95 1s > 500ms"},
		{"slow like baseline", Stats{Requests: 100, P95: 900 * time.Millisecond}, Stats{Requests: 100, P95: 800 * time.Millisecond}, false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.Check(tt.s, tt.base, !tt.baseDead)
			if got.Breach != tt.want || !strings.Contains(got.Reason, tt.mentions) {
				t.Errorf("Check = %+v, want breach %v mentioning %q", got, tt.want, tt.mentions)
			}
		})
	}
}

func BenchmarkRecord(b *testing.B) {
	for _, n := range []int{0, 1, 10} {
		b.Run("flags="+strconv.Itoa(n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = "f" + strconv.Itoa(i)
			}
			m := NewRegistry().Meter([]string{"blue", "green"}, names)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m.Record(i&1, uint64(i), i%50 == 0, time.Duration(i&1023)*time.Microsecond)
				i++
			}
		})
	}
}

func TestTotalsOutliveTheWindow(t *testing.T) {
	reg := NewRegistry()
	m := reg.Meter([]string{"blue"}, []string{"f"})
	for i := range 30 {
		m.Record(0, uint64(i%3/2), i%10 == 0, 3*time.Millisecond)
	}
	for range 2 * Slots { // the window empties; the totals keep everything
		reg.Advance()
	}
	m.Record(0, 0, false, 3*time.Millisecond)
	pools, flags := reg.Totals()
	if got := pools["blue"]; got.Requests != 31 || got.Errors != 3 {
		t.Errorf("blue totals = %d requests, %d errors; want 31, 3", got.Requests, got.Errors)
	}
	if off, on := flags["f"][0], flags["f"][1]; on.Requests != 10 || off.Requests != 21 {
		t.Errorf("flag f totals: off %d, on %d; want 21, 10", off.Requests, on.Requests)
	}
	b := pools["blue"].Buckets
	if len(b) != len(Bounds) || b[len(b)-1] != 31 {
		t.Errorf("buckets %v: want %d cumulative buckets ending at 31", b, len(Bounds))
	}
	// 3 ms falls at or under the 4.096 ms bound and above 2.048 ms.
	for i, bound := range Bounds {
		want := uint64(0)
		if bound >= 0.003 {
			want = 31
		}
		if b[i] != want {
			t.Errorf("bucket le=%v: %d, want %d", bound, b[i], want)
		}
	}
	if s := pools["blue"].Sum; s < 31*0.0025 || s > 31*0.0035 {
		t.Errorf("latency sum %v s, want about %v", s, 31*0.003)
	}
}

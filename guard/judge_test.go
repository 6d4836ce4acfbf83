package guard

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

var judgeNow = time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC)

// testGuard is a 5% error ceiling over 20 samples, twice as bad as the
// baseline, with a 30 s cooldown.
func testGuard() *gateway.Guard {
	return &gateway.Guard{ErrorRate: 5, MinRequests: 20, Baseline: 2, Window: gateway.Duration(2 * time.Second), Cooldown: gateway.Duration(30 * time.Second)}
}

// snapshot compiles a deployment checkout at version 7 with a pool for
// each weight.
func snapshot(t *testing.T, weights map[string]float64, flags map[string]float64, g *gateway.Guard) *gateway.Snapshot {
	t.Helper()
	cfg := gateway.Config{Name: "checkout", Version: 7, Pools: map[string]gateway.Pool{}, Weights: weights, Flags: map[string]gateway.Flag{}, Guard: g}
	port := 9001
	for _, p := range slices.Sorted(maps.Keys(weights)) {
		cfg.Pools[p] = gateway.Pool{Upstreams: []string{"127.0.0.1:" + strconv.Itoa(port)}}
		port++
	}
	for f, pct := range flags {
		cfg.Flags[f] = gateway.Flag{Percent: pct}
	}
	snap, err := gateway.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// traffic is n requests to pool, errs of them failing, with the flag bits
// set; advance slots pass before they are recorded.
type traffic struct {
	advance int
	pool    string
	flags   uint64
	n, errs int
	latency time.Duration
}

// windowOf records the traffic into a fresh registry's meter and reads the
// window, as the evaluator would.
func windowOf(t *testing.T, snap *gateway.Snapshot, recs []traffic) Window {
	t.Helper()
	reg := NewRegistry()
	var pools []string
	for _, p := range snap.Pools() {
		pools = append(pools, p.Name)
	}
	m := reg.Meter(pools, snap.FlagNames())
	for _, r := range recs {
		for range r.advance {
			reg.Advance()
		}
		i, ok := snap.PoolIndex(r.pool)
		if !ok {
			t.Fatalf("traffic to unknown pool %q", r.pool)
		}
		lat := r.latency
		if lat == 0 {
			lat = 10 * time.Millisecond
		}
		for k := range r.n {
			m.Record(i, r.flags, k < r.errs, lat)
		}
	}
	return reg.Stats()
}

// breaching lists the view's breaching populations as "pool:NAME" and
// "flag:NAME".
func breaching(v View) []string {
	var out []string
	for n, p := range v.Pools {
		if p.Breach != "" {
			out = append(out, "pool:"+n)
		}
	}
	for n, c := range v.Flags {
		if c.On.Breach != "" {
			out = append(out, "flag:"+n)
		}
		if c.Off.Breach != "" {
			out = append(out, "flag-off:"+n)
		}
	}
	slices.Sort(out)
	return out
}

func TestJudge(t *testing.T) {
	canary := map[string]float64{"blue": 80, "green": 20}
	healthyBlue := traffic{pool: "blue", n: 200, errs: 1}
	unhealthy := map[string]PoolHealth{"blue": {Healthy: false, Error: "127.0.0.1:9001: 503 Service Unavailable"}}
	noBaseline := &gateway.Guard{ErrorRate: 5, MinRequests: 20}
	tests := []struct {
		name        string
		weights     map[string]float64
		flags       map[string]float64
		guard       *gateway.Guard // nil: testGuard()
		noGuard     bool
		traffic     []traffic
		health      map[string]PoolHealth
		retained    []string
		sinceWrite  time.Duration // since the last guard version; 0: never
		sinceRefuse time.Duration // since the last refusal report; 0: never

		want      ActionKind
		subject   string
		target    string
		mentions  string // in the action's reason
		omits     string // not in the action's reason
		breaching []string
		view      func(*testing.T, View)
	}{
		{
			name: "healthy canary", weights: canary,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50}},
		},
		{
			name: "bad canary falls back to the pool with the traffic", weights: canary,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			want:    Fallback, subject: "pool:green", target: "blue",
			mentions:  "error rate 100.0% > 5.0% and > 2× baseline 0.5% (50 requests, 50 errors); traffic to blue",
			breaching: []string{"pool:green"},
		},
		{
			name: "flags are judged before pools", weights: canary, flags: map[string]float64{"f": 30, "quiet": 50},
			traffic: []traffic{
				{pool: "blue", n: 150},
				{pool: "blue", flags: 1, n: 50, errs: 50}, // f is bit 0, quiet bit 1
				{pool: "green", n: 40, errs: 40},
				{pool: "green", flags: 1, n: 10, errs: 10},
			},
			want: FlagOff, subject: "flag:f", mentions: "; flag set to 0%",
			breaching: []string{"flag:f", "pool:green"},
		},
		{
			name: "a fault shared by both pools is not a breach", weights: map[string]float64{"blue": 50, "green": 50},
			traffic: []traffic{{pool: "blue", n: 100, errs: 50}, {pool: "green", n: 100, errs: 55}},
			view: func(t *testing.T, v View) {
				if g := v.Pools["green"]; g.Errors != 55 || g.ErrorRate < 54.9 || g.ErrorRate > 55.1 {
					t.Errorf("green %d errors (%v%%), want 55", g.Errors, g.ErrorRate)
				}
			},
		},
		{
			name: "worse than a shared fault by the factor", weights: map[string]float64{"blue": 50, "green": 50},
			traffic: []traffic{{pool: "blue", n: 100, errs: 4}, {pool: "green", n: 100, errs: 9}},
			want:    Fallback, subject: "pool:green", target: "blue", mentions: "error rate 9.0% > 5.0% and > 2× baseline 4.0%",
			breaching: []string{"pool:green"},
		},
		{
			name: "within the factor of its baseline", weights: map[string]float64{"blue": 50, "green": 50},
			traffic: []traffic{{pool: "blue", n: 100, errs: 4}, {pool: "green", n: 100, errs: 7}},
		},
		{
			name: "a pool without weight is not judged", weights: map[string]float64{"blue": 100, "green": 0},
			traffic: []traffic{{pool: "blue", n: 100}, {pool: "green", n: 50, errs: 50}},
		},
		{
			name: "waiting for samples", weights: canary,
			traffic: []traffic{healthyBlue, {pool: "green", n: 19, errs: 19}},
			view: func(t *testing.T, v View) {
				if w := v.Pools["green"].Waiting; w != "19 of 20 requests" {
					t.Errorf("green waiting %q, want %q", w, "19 of 20 requests")
				}
			},
		},
		{
			name: "waiting for the baseline's samples", weights: map[string]float64{"blue": 10, "green": 90},
			traffic: []traffic{{pool: "blue", n: 5}, {pool: "green", n: 100, errs: 100}},
			view: func(t *testing.T, v View) {
				if w := v.Pools["green"].Waiting; w != "baseline has 5 of 20 requests" {
					t.Errorf("green waiting %q, want the baseline's count", w)
				}
			},
		},
		{
			name: "no baseline after a full flip", weights: map[string]float64{"blue": 0, "green": 100},
			traffic: []traffic{{pool: "green", n: 100, errs: 100}},
			want:    Fallback, subject: "pool:green", target: "blue", mentions: "error rate 100.0% > 5.0% (100 requests", omits: "baseline",
			breaching: []string{"pool:green"},
		},
		{
			name: "a flag at 100% has no off cohort to compare with", weights: canary, flags: map[string]float64{"f": 100},
			traffic: []traffic{{pool: "blue", flags: 1, n: 80, errs: 80}, {pool: "green", flags: 1, n: 20, errs: 20}},
			want:    FlagOff, subject: "flag:f", omits: "baseline",
			breaching: []string{"flag:f"},
		},
		{
			name: "failures that left the window are forgotten", weights: canary,
			traffic: []traffic{{pool: "green", n: 50, errs: 50}, {advance: Slots, pool: "blue", n: 100}, {pool: "green", n: 30}},
		},
		{
			name: "cooldown holds the fallback", weights: canary, sinceWrite: 10 * time.Second,
			traffic:   []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			breaching: []string{"pool:green"},
			view: func(t *testing.T, v View) {
				if want := judgeNow.Add(20 * time.Second); !v.Cooldown.Equal(want) {
					t.Errorf("cooldown until %v, want %v", v.Cooldown, want)
				}
			},
		},
		{
			name: "after the cooldown the fallback goes ahead", weights: canary, sinceWrite: 30 * time.Second,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			want:    Fallback, subject: "pool:green", target: "blue",
			breaching: []string{"pool:green"},
			view: func(t *testing.T, v View) {
				if !v.Cooldown.IsZero() {
					t.Errorf("cooldown until %v after it ended", v.Cooldown)
				}
			},
		},
		{
			name: "no traffic onto a pool failing its health checks", weights: canary, health: unhealthy,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			want:    Refused, subject: "pool:green", mentions: "not moving traffic: blue fails its health checks (127.0.0.1:9001: 503",
			breaching: []string{"pool:green"},
			view: func(t *testing.T, v View) {
				if r := v.Pools["green"].Refused; !strings.Contains(r, "blue fails its health checks") {
					t.Errorf("green refused %q, want why", r)
				}
				if v.Health["blue"].Healthy {
					t.Error("view lost the health")
				}
			},
		},
		{
			name: "a refusal is reported once per cooldown", weights: canary, health: unhealthy, sinceRefuse: 10 * time.Second,
			traffic:   []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			breaching: []string{"pool:green"},
		},
		{
			name: "a refusal is reported during a fallback's cooldown", weights: canary, health: unhealthy,
			sinceWrite: time.Second, sinceRefuse: 31 * time.Second,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}},
			want:    Refused, subject: "pool:green",
			breaching: []string{"pool:green"},
		},
		{
			name: "no other pool can take the traffic", weights: map[string]float64{"blue": 50, "green": 50}, guard: noBaseline,
			traffic: []traffic{{pool: "blue", n: 100, errs: 100}, {pool: "green", n: 100, errs: 100}},
			want:    Refused, subject: "pool:blue", mentions: "not moving traffic: green is failing too (error rate 100.0%",
			breaching: []string{"pool:blue", "pool:green"},
		},
		{
			name: "the target is the pool with the most traffic", weights: map[string]float64{"blue": 30, "green": 20, "red": 50},
			traffic:  []traffic{{pool: "blue", n: 60}, {pool: "green", n: 40, errs: 40}, {pool: "red", n: 100}},
			retained: []string{"blue"},
			want:     Fallback, subject: "pool:green", target: "red",
			breaching: []string{"pool:green"},
		},
		{
			name: "on a tie the target is the retained pool", weights: map[string]float64{"blue": 0, "green": 100, "red": 0},
			traffic: []traffic{{pool: "green", n: 40, errs: 40}}, retained: []string{"red"},
			want: Fallback, subject: "pool:green", target: "red",
			breaching: []string{"pool:green"},
		},
		{
			name: "on a tie without a retained pool, name order", weights: map[string]float64{"blue": 0, "green": 100, "red": 0},
			traffic: []traffic{{pool: "green", n: 40, errs: 40}},
			want:    Fallback, subject: "pool:green", target: "blue",
			breaching: []string{"pool:green"},
		},
		{
			name: "the target is not a pool failing too", weights: map[string]float64{"blue": 60, "green": 20, "red": 20}, guard: noBaseline,
			traffic: []traffic{{pool: "blue", n: 100, errs: 100}, {pool: "green", n: 30, errs: 30}, {pool: "red", n: 30}},
			want:    Fallback, subject: "pool:blue", target: "red",
			breaching: []string{"pool:blue", "pool:green"},
		},
		{
			name: "p95 over its ceiling", weights: canary, guard: &gateway.Guard{P95: gateway.Duration(500 * time.Millisecond)},
			traffic: []traffic{{pool: "blue", n: 80, latency: 20 * time.Millisecond}, {pool: "green", n: 20, latency: 2 * time.Second}},
			want:    Fallback, subject: "pool:green", target: "blue", mentions: "p95 2.",
			breaching: []string{"pool:green"},
		},
		{
			name: "no guard configured: figures only", weights: canary, flags: map[string]float64{"f": 50}, noGuard: true,
			traffic: []traffic{healthyBlue, {pool: "green", n: 50, errs: 50}, {pool: "green", flags: 1, n: 50, errs: 50}},
			view: func(t *testing.T, v View) {
				if v.Guard || v.Note != NoGuardNote {
					t.Errorf("guard %v, note %q; want false and %q", v.Guard, v.Note, NoGuardNote)
				}
				if g := v.Pools["green"]; g.Requests != 100 || g.Errors != 100 || g.Waiting != "" {
					t.Errorf("green %+v, want its 100 requests and errors, no verdict", g)
				}
				if c := v.Flags["f"]; c.On.Requests != 50 || c.Off.Requests != 250 {
					t.Errorf("flag f on %d, off %d requests; want 50, 250", c.On.Requests, c.Off.Requests)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.guard
			if g == nil && !tt.noGuard {
				g = testGuard()
			}
			snap := snapshot(t, tt.weights, tt.flags, g)
			in := Input{
				Snapshot: snap, Policy: Compile(snap.Guard()), Window: windowOf(t, snap, tt.traffic),
				Health: tt.health, Instance: "gw-1", Now: judgeNow,
			}
			if tt.sinceWrite != 0 {
				in.LastFallback = judgeNow.Add(-tt.sinceWrite)
			}
			if tt.sinceRefuse != 0 {
				in.LastRefusal = judgeNow.Add(-tt.sinceRefuse)
			}
			for _, p := range tt.retained {
				if in.Retained == nil {
					in.Retained = map[string]time.Time{}
				}
				in.Retained[p] = judgeNow.Add(time.Hour)
			}

			view, act := Judge(in)

			if act.Kind != tt.want || act.Subject != tt.subject || act.Target != tt.target {
				t.Errorf("action %v %q → %q (%s); want %v %q → %q", act.Kind, act.Subject, act.Target, act.Reason, tt.want, tt.subject, tt.target)
			}
			if act.Version != 7 {
				t.Errorf("action on version %d, want the judged 7", act.Version)
			}
			if !strings.Contains(act.Reason, tt.mentions) || (tt.omits != "" && strings.Contains(act.Reason, tt.omits)) {
				t.Errorf("reason %q: want it to mention %q and not %q", act.Reason, tt.mentions, tt.omits)
			}
			if got := breaching(view); !slices.Equal(got, tt.breaching) {
				t.Errorf("breaching %v, want %v", got, tt.breaching)
			}
			if view.Deployment != "checkout" || view.Version != 7 || view.Instance != "gw-1" || !view.Updated.Equal(judgeNow) || view.Guard == tt.noGuard {
				t.Errorf("view of %s v%d on %s at %v (guard %v)", view.Deployment, view.Version, view.Instance, view.Updated, view.Guard)
			}
			if len(view.Pools) != len(tt.weights) || len(view.Flags) != len(tt.flags) {
				t.Errorf("view has %d pools and %d flags, want %d and %d", len(view.Pools), len(view.Flags), len(tt.weights), len(tt.flags))
			}
			if tt.view != nil {
				tt.view(t, view)
			}
		})
	}
}

func TestActionApply(t *testing.T) {
	base := func() gateway.Config {
		return gateway.Config{
			Weights: map[string]float64{"blue": 70, "green": 20, "red": 10},
			Flags:   map[string]gateway.Flag{"f": {Percent: 30}, "g": {Percent: 40}},
		}
	}
	tests := []struct {
		name    string
		act     Action
		weights map[string]float64
		flags   map[string]float64
		wantErr bool
	}{
		{"fallback adds the weight to the target", Action{Kind: Fallback, Name: "green", Target: "red"},
			map[string]float64{"blue": 70, "green": 0, "red": 30}, map[string]float64{"f": 30, "g": 40}, false},
		{"flag off", Action{Kind: FlagOff, Name: "f"},
			map[string]float64{"blue": 70, "green": 20, "red": 10}, map[string]float64{"f": 0, "g": 40}, false},
		{"flag gone meanwhile", Action{Kind: FlagOff, Name: "h"}, nil, nil, true},
		{"a refusal writes nothing", Action{Kind: Refused, Name: "green"}, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			err := tt.act.Apply(&c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply: %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			flags := map[string]float64{}
			for n, f := range c.Flags {
				flags[n] = f.Percent
			}
			if !maps.Equal(c.Weights, tt.weights) || !maps.Equal(flags, tt.flags) {
				t.Errorf("weights %v, flags %v; want %v, %v", c.Weights, flags, tt.weights, tt.flags)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	tests := []struct {
		name string
		g    *gateway.Guard
		want Policy
	}{
		{"no guard", nil, Policy{MinRequests: 20, Window: 10 * time.Second, Cooldown: 30 * time.Second}},
		{"defaults", &gateway.Guard{ErrorRate: 5}, Policy{Configured: true, ErrorRate: 0.05, MinRequests: 20, Window: 10 * time.Second, Cooldown: 30 * time.Second}},
		{"all set", &gateway.Guard{ErrorRate: 1, P95: gateway.Duration(time.Second), MinRequests: 5, Baseline: 3,
			Window: gateway.Duration(time.Minute), Cooldown: gateway.Duration(time.Hour)},
			Policy{Configured: true, ErrorRate: 0.01, P95: time.Second, MinRequests: 5, Baseline: 3, Window: time.Minute, Cooldown: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Compile(tt.g); got != tt.want {
				t.Errorf("Compile = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestViewJSON pins the answer's shape: labelled cohorts and an explicit
// guard flag, and it reads back into the same value.
func TestViewJSON(t *testing.T) {
	snap := snapshot(t, map[string]float64{"blue": 80, "green": 20}, map[string]float64{"f": 50}, nil)
	view, _ := Judge(Input{
		Snapshot: snap, Policy: Compile(nil), Now: judgeNow, Instance: "gw-1",
		Window:   windowOf(t, snap, []traffic{{pool: "blue", n: 10, errs: 1}, {pool: "green", flags: 1, n: 10}}),
		Health:   map[string]PoolHealth{"blue": {Healthy: true, Checked: judgeNow, LastHealthy: judgeNow}},
		Retained: map[string]time.Time{"green": judgeNow.Add(time.Hour)},
	})
	b, err := json.Marshal(view)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["guard"] != false || raw["note"] != NoGuardNote {
		t.Errorf("guard %v, note %v; want false and the note", raw["guard"], raw["note"])
	}
	f, _ := raw["flags"].(map[string]any)["f"].(map[string]any)
	if on, ok := f["on"].(map[string]any); !ok || on["requests"] != 10.0 || f["off"] == nil {
		t.Errorf("flag f = %v, want labelled on (10 requests) and off cohorts", f)
	}
	if p95 := raw["pools"].(map[string]any)["blue"].(map[string]any)["p95"]; p95 != "10.24ms" {
		t.Errorf("blue p95 %v, want a readable duration", p95)
	}
	var back View
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, view) {
		t.Errorf("read back\n%+v\nwant\n%+v", back, view)
	}
}

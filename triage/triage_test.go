package triage

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

var t0 = time.Date(2026, 11, 29, 17, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// doc builds version v of the checkout deployment, written at minute min.
func doc(v uint64, min int, blue, green, flag float64, summary string) configstore.Document {
	return configstore.Document{
		Meta: configstore.Meta{Version: v, Time: t0.Add(time.Duration(min) * time.Minute), Author: "alice", Source: configstore.SourceCLI, Summary: summary},
		Config: gateway.Config{
			Name: "checkout", Version: v,
			Pools:   map[string]gateway.Pool{"blue": {Upstreams: []string{"127.0.0.1:9001"}}, "green": {Upstreams: []string{"127.0.0.1:9002"}, Release: "v2"}},
			Weights: map[string]float64{"blue": blue, "green": green},
			Flags:   map[string]gateway.Flag{"new_payment_flow": {Percent: flag}},
		},
	}
}

// retained marks pools as rollback targets, as a flip leaves them.
func retained(d configstore.Document, pools ...string) configstore.Document {
	d.Retained = map[string]time.Time{}
	for _, p := range pools {
		d.Retained[p] = d.Meta.Time.Add(24 * time.Hour)
	}
	return d
}

func st(req, errs uint64, p95 time.Duration) guard.Stats {
	return guard.Stats{Requests: req, Errors: errs, P50: p95 / 2, P95: p95, P99: p95}
}

func window(blue, green, on, off guard.Stats) guard.Window {
	return guard.Window{
		Pools: map[string]guard.Stats{"blue": blue, "green": green},
		Flags: map[string]guard.Cohorts[guard.Stats]{"new_payment_flow": {On: on, Off: off}},
	}
}

var healthy = window(st(100, 0, 5*ms), st(100, 0, 6*ms), st(20, 0, 6*ms), st(180, 0, 6*ms))

func TestAnalyze(t *testing.T) {
	noGuard := guard.Compile(nil)
	withGuard := guard.Compile(&gateway.Guard{ErrorRate: 5, P95: gateway.Duration(500 * ms), Baseline: 2})
	tests := []struct {
		name     string
		versions []configstore.Document
		now      guard.Window
		marks    []Mark
		policy   guard.Policy
		view     *guard.View
		// want is the suspects' subjects and commands, in order.
		want        []string
		wantRestore string // "" for none; "safe" or "unsafe"
		wantSummary string
	}{
		{
			// The incident of issue 17: green widened to 50% and slow, then
			// a flag raised to 60% whose cohort fails on blue. Moving
			// green's users to blue first would put them into blue's
			// errors: the flag goes off first.
			name: "slow green and a flag failing on blue",
			versions: []configstore.Document{
				doc(1, 0, 90, 10, 10, "created"),
				doc(2, 30, 50, 50, 10, "weights.blue 90 → 50, weights.green 10 → 50"),
				doc(3, 40, 50, 50, 60, "flags.new_payment_flow.percent 10 → 60"),
			},
			now:    window(st(100, 60, 5*ms), st(100, 0, 950*ms), st(120, 60, 950*ms), st(80, 0, 950*ms)),
			marks:  []Mark{{Version: 2, Applied: t0.Add(30 * time.Minute), Window: healthy}, {Version: 3, Applied: t0.Add(40 * time.Minute), Window: window(st(100, 5, 5*ms), st(100, 0, 950*ms), st(20, 5, 950*ms), st(180, 0, 950*ms))}},
			policy: noGuard,
			want: []string{
				"flag:new_payment_flow switchback flag checkout new_payment_flow 0 --reason 'triage: flag new_payment_flow cohort failing'",
				"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'",
			},
			wantRestore: "unsafe",
			wantSummary: "2 suspects: run their commands in this order",
		},
		{
			name: "only green fails",
			versions: []configstore.Document{
				doc(1, 0, 90, 10, 10, "created"),
				doc(2, 30, 50, 50, 10, "weights.blue 90 → 50, weights.green 10 → 50"),
			},
			now:    window(st(100, 0, 5*ms), st(100, 100, 3*ms), st(20, 10, 5*ms), st(180, 90, 5*ms)),
			policy: noGuard,
			want:   []string{"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'"},
		},
		{
			// Green's 500s are answered fast; blue's usual latency is no
			// slowness against them.
			name: "only green fails, fast",
			versions: []configstore.Document{
				doc(1, 0, 90, 10, 10, "created"),
				doc(2, 30, 50, 50, 10, "weights.blue 90 → 50, weights.green 10 → 50"),
			},
			now: window(guard.Stats{Requests: 100, P50: 60 * ms, P95: 160 * ms}, guard.Stats{Requests: 100, Errors: 100, P50: 2 * ms, P95: 4 * ms},
				st(20, 10, 160*ms), st(180, 90, 160*ms)),
			policy: noGuard,
			want:   []string{"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'"},
		},
		{
			name: "only green is slow, over the guard's ceiling",
			versions: []configstore.Document{
				doc(1, 0, 90, 10, 10, "created"),
				doc(2, 30, 50, 50, 10, "weights.blue 90 → 50, weights.green 10 → 50"),
			},
			now:    window(st(100, 0, 5*ms), st(100, 0, 900*ms), st(20, 0, 900*ms), st(180, 0, 900*ms)),
			policy: withGuard,
			want:   []string{"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'"},
		},
		{
			name: "only the flag fails, in both pools",
			versions: []configstore.Document{
				doc(1, 0, 50, 50, 10, "created"),
				doc(2, 50, 50, 50, 60, "flags.new_payment_flow.percent 10 → 60"),
			},
			now:    window(st(100, 60, 5*ms), st(100, 60, 5*ms), st(120, 120, 5*ms), st(80, 0, 5*ms)),
			policy: noGuard,
			want:   []string{"flag:new_payment_flow switchback flag checkout new_payment_flow 0 --reason 'triage: flag new_payment_flow cohort failing'"},
		},
		{
			// A few slow answers in a small pool on a busy machine: its
			// p95 doubles, its median does not move.
			name:     "a slow tail is not slowness",
			versions: []configstore.Document{doc(1, 0, 90, 10, 10, "created")},
			now: window(guard.Stats{Requests: 420, P50: 20 * ms, P95: 164 * ms}, guard.Stats{Requests: 26, P50: 20 * ms, P95: 400 * ms},
				guard.Stats{Requests: 44, P50: 20 * ms, P95: 164 * ms}, guard.Stats{Requests: 402, P50: 20 * ms, P95: 164 * ms}),
			policy:      noGuard,
			wantSummary: "nothing is failing in this window",
		},
		{
			name:        "nothing fails",
			versions:    []configstore.Document{doc(1, 0, 90, 10, 10, "created")},
			now:         healthy,
			policy:      noGuard,
			wantSummary: "nothing is failing in this window",
		},
		{
			name:        "both pools fail alike",
			versions:    []configstore.Document{doc(1, 0, 50, 50, 10, "created")},
			now:         window(st(100, 90, 5*ms), st(100, 90, 5*ms), st(20, 18, 5*ms), st(180, 162, 5*ms)),
			policy:      noGuard,
			wantSummary: "every pool fails alike (90.0% errors over 200 requests)",
		},
		{
			name:     "too few requests to accuse",
			versions: []configstore.Document{doc(1, 0, 50, 50, 10, "created")},
			now:      window(st(10, 0, 5*ms), st(10, 10, 5*ms), st(2, 1, 5*ms), st(18, 9, 5*ms)),
			policy:   noGuard,
		},
		{
			name:     "failing pool with nowhere to go",
			versions: []configstore.Document{doc(1, 0, 50, 50, 0, "created")},
			now:      window(st(100, 0, 5*ms), st(100, 100, 5*ms), st(0, 0, 0), st(200, 100, 5*ms)),
			policy:   withGuard,
			view: &guard.View{Health: map[string]guard.PoolHealth{"blue": {Healthy: false, Error: "503 Service Unavailable"}},
				Pools: map[string]guard.Population{"green": {Breach: "error rate 100.0% > 5.0%", Refused: "blue fails its health checks"}}},
			want: []string{"pool:green "},
		},
		{
			name: "flag already off: its old failures are no suspect",
			versions: []configstore.Document{
				doc(1, 0, 50, 50, 60, "created"),
				doc(2, 55, 50, 50, 0, "flags.new_payment_flow.percent 60 → 0"),
			},
			now:    window(st(100, 30, 5*ms), st(100, 30, 5*ms), st(60, 60, 5*ms), st(140, 0, 5*ms)),
			policy: noGuard,
		},
		{
			// After a full flip no other pool has traffic to compare with,
			// nor had green before it: the deployment's window before the
			// flip is the baseline.
			name: "all traffic on a slow green, new before the flip",
			versions: []configstore.Document{
				doc(1, 0, 100, 0, 0, "created"),
				retained(doc(2, 45, 0, 100, 0, "weights.blue 100 → 0, weights.green 0 → 100"), "blue"),
			},
			now:    window(st(0, 0, 0), st(200, 0, 950*ms), st(0, 0, 0), st(200, 0, 950*ms)),
			marks:  []Mark{{Version: 2, Applied: t0.Add(45 * time.Minute), Window: window(st(200, 0, 5*ms), st(0, 0, 0), st(0, 0, 0), st(200, 0, 5*ms))}},
			policy: noGuard,
			want:   []string{"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'"},
		},
		{
			name: "all traffic on a slow green, nothing measured before",
			versions: []configstore.Document{
				doc(1, 0, 100, 0, 0, "created"),
				retained(doc(2, 45, 0, 100, 0, "weights.blue 100 → 0, weights.green 0 → 100"), "blue"),
			},
			now:    window(st(0, 0, 0), st(200, 0, 950*ms), st(0, 0, 0), st(200, 0, 950*ms)),
			policy: noGuard,
		},
		{
			name: "all traffic on a slow green, with its window before",
			versions: []configstore.Document{
				doc(1, 0, 90, 10, 0, "created"),
				retained(doc(2, 45, 0, 100, 0, "weights.blue 90 → 0, weights.green 10 → 100"), "blue"),
			},
			now:    window(st(0, 0, 0), st(200, 0, 950*ms), st(0, 0, 0), st(200, 0, 950*ms)),
			marks:  []Mark{{Version: 2, Applied: t0.Add(45 * time.Minute), Window: window(st(180, 0, 5*ms), st(20, 0, 8*ms), st(0, 0, 0), st(200, 0, 8*ms))}},
			policy: noGuard,
			want:   []string{"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'"},
		},
		{
			// Going back to v1 takes everyone off both suspects at once.
			name: "two suspect changes on a clean start: the restore is safe",
			versions: []configstore.Document{
				doc(1, 0, 100, 0, 0, "created"),
				doc(2, 30, 50, 50, 0, "weights.blue 100 → 50, weights.green 0 → 50"),
				doc(3, 40, 50, 50, 60, "flags.new_payment_flow.percent 0 → 60"),
			},
			now:    window(st(100, 60, 5*ms), st(100, 0, 950*ms), st(120, 60, 950*ms), st(80, 0, 950*ms)),
			policy: noGuard,
			want: []string{
				"flag:new_payment_flow switchback flag checkout new_payment_flow 0 --reason 'triage: flag new_payment_flow cohort failing'",
				"pool:green switchback weights checkout blue=100 green=0 --reason 'triage: pool green failing'",
			},
			wantRestore: "safe",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Analyze(Input{Versions: tt.versions, Now: tt.now, Marks: tt.marks, Policy: tt.policy, View: tt.view,
				Scope: "instance test", Time: t0.Add(50 * time.Minute)})
			var got []string
			for i, s := range r.Suspects {
				if s.Rank != i+1 {
					t.Errorf("suspect %d has rank %d", i, s.Rank)
				}
				got = append(got, s.Subject+" "+s.Command)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("suspects:\n got %q\nwant %q", got, tt.want)
			}
			switch {
			case tt.wantRestore == "" && r.Restore != nil:
				t.Errorf("restore offered: %+v", r.Restore)
			case tt.wantRestore != "" && r.Restore == nil:
				t.Errorf("no restore offered, want a %s one", tt.wantRestore)
			case tt.wantRestore != "" && r.Restore.Safe != (tt.wantRestore == "safe"):
				t.Errorf("restore safe = %v, want %s (leaves %q)", r.Restore.Safe, tt.wantRestore, r.Restore.Leaves)
			}
			if !strings.HasPrefix(r.Summary, tt.wantSummary) {
				t.Errorf("summary %q, want it to start with %q", r.Summary, tt.wantSummary)
			}
			if r.Guard.Configured != tt.policy.Configured {
				t.Errorf("guard configured = %v, want %v", r.Guard.Configured, tt.policy.Configured)
			}
		})
	}
}

// TestAnalyzeEvidence checks what the first scenario says beside the
// commands: the changes, the before figures, the guard, the restore.
func TestAnalyzeEvidence(t *testing.T) {
	versions := []configstore.Document{
		doc(1, 0, 90, 10, 10, "created"),
		doc(2, 30, 50, 50, 10, "weights.blue 90 → 50, weights.green 10 → 50"),
		doc(3, 40, 50, 50, 60, "flags.new_payment_flow.percent 10 → 60"),
	}
	before3 := window(st(100, 5, 5*ms), st(100, 0, 950*ms), st(20, 5, 950*ms), st(180, 0, 950*ms))
	r := Analyze(Input{
		Versions: versions,
		Now:      window(st(100, 60, 5*ms), st(100, 0, 950*ms), st(120, 60, 950*ms), st(80, 0, 950*ms)),
		Marks:    []Mark{{Version: 2, Applied: t0.Add(30 * time.Minute), Window: healthy}, {Version: 3, Applied: t0.Add(40 * time.Minute), Window: before3}},
		Policy:   guard.Compile(nil), Scope: "instance test", Time: t0.Add(50 * time.Minute),
	})
	if got := len(r.Changes); got != 3 || r.Changes[0].Version != 3 {
		t.Errorf("changes %+v, want v3, v2, v1 newest first", r.Changes)
	}
	if r.Before == nil || r.Before.Version != 3 || r.Before.Note != "" {
		t.Errorf("before = %+v, want v3 without a note", r.Before)
	}
	if r.Pools[0].Name != "blue" || r.Pools[0].Before == nil || r.Pools[0].Before.Errors != 5 || r.Pools[0].ExplainedBy != "new_payment_flow" {
		t.Errorf("blue = %+v, want before figures and explained by the flag", r.Pools[0])
	}
	if f := r.Flags[0]; f.On.Now.ErrorRate != 50 || f.On.Before == nil || f.On.Before.Errors != 5 || f.Failing == "" {
		t.Errorf("flag = %+v", f)
	}
	if r.Guard.Configured || !strings.HasPrefix(r.Guard.Policy, "no guard configured") {
		t.Errorf("guard = %+v", r.Guard)
	}
	s := r.Suspects[0]
	if s.Change == nil || s.Change.Version != 3 {
		t.Errorf("flag suspect's change = %+v, want v3", s.Change)
	}
	if !slices.ContainsFunc(s.Evidence, func(e string) bool { return strings.Contains(e, "pool blue") }) {
		t.Errorf("flag evidence %q does not say it fails in blue", s.Evidence)
	}
	if g := r.Suspects[1]; g.Change == nil || g.Change.Version != 2 || !strings.Contains(g.Effect, "green's users move to blue") {
		t.Errorf("green suspect = %+v", g)
	}
	want := "switchback restore checkout --before-version 2 --reason 'triage: undo v2 to v3'"
	if r.Restore == nil || r.Restore.Command != want || r.Restore.To != 1 || len(r.Restore.Leaves) != 2 {
		t.Errorf("restore = %+v, want %q to v1 leaving the flag and green", r.Restore, want)
	}
	if r.Scope != "instance test" || !strings.Contains(r.ScopeNote, "fleet-wide") {
		t.Errorf("scope %q, note %q", r.Scope, r.ScopeNote)
	}
}

func TestAnalyzeGuardWould(t *testing.T) {
	p := guard.Compile(&gateway.Guard{ErrorRate: 5})
	view := &guard.View{
		Guard: true,
		Pools: map[string]guard.Population{"green": {Breach: "error rate 100.0% > 5.0%"}},
		Flags: map[string]guard.Cohorts[guard.Population]{"new_payment_flow": {On: guard.Population{Breach: "error rate 50.0% > 5.0%"}}},
	}
	r := Analyze(Input{Versions: []configstore.Document{doc(1, 0, 50, 50, 10, "created")}, Now: healthy, Policy: p, View: view, Time: t0})
	want := []string{
		"sets flag new_payment_flow to 0% (error rate 50.0% > 5.0%)",
		"moves pool green's traffic (error rate 100.0% > 5.0%)",
	}
	if !r.Guard.Configured || !slices.Equal(r.Guard.Would, want) {
		t.Errorf("guard = %+v, want would %q", r.Guard, want)
	}
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"switchback", "weights", "checkout", "blue=100"}, "switchback weights checkout blue=100"},
		{[]string{"--reason", "it's bad"}, `--reason 'it'\''s bad'`},
		{[]string{""}, "''"},
	}
	for _, tt := range tests {
		if got := shellJoin(tt.args); got != tt.want {
			t.Errorf("shellJoin(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}

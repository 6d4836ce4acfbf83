package guard

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestChangeOf(t *testing.T) {
	base := gateway.Config{
		Pools:   map[string]gateway.Pool{"blue": {}, "green": {}},
		Weights: map[string]float64{"blue": 100, "green": 0},
		Flags:   map[string]gateway.Flag{"cart": {Percent: 10}},
	}
	with := func(edit func(*gateway.Config)) gateway.Config {
		c := base.Clone()
		edit(&c)
		return c
	}
	tests := []struct {
		name        string
		next        gateway.Config
		ok          bool
		wantFlags   map[string]float64
		wantWeights map[string]float64
		wantWhat    string
	}{
		{"flag raised", with(func(c *gateway.Config) { c.Flags["cart"] = gateway.Flag{Percent: 50} }), true,
			map[string]float64{"cart": 10}, nil, "flag cart raised 10% → 50%"},
		{"new flag on", with(func(c *gateway.Config) { c.Flags["pay"] = gateway.Flag{Percent: 5} }), true,
			map[string]float64{"pay": 0}, nil, "flag pay raised 0% → 5%"},
		{"weights moved", with(func(c *gateway.Config) { c.Weights = map[string]float64{"blue": 80, "green": 20} }), true,
			nil, map[string]float64{"blue": 100, "green": 0}, "weights moved"},
		{"flag lowered", with(func(c *gateway.Config) { c.Flags["cart"] = gateway.Flag{Percent: 0} }), false, nil, nil, ""},
		{"nothing", base.Clone(), false, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ChangeOf(base, tt.next)
			if ok != tt.ok || !maps.Equal(got.Flags, tt.wantFlags) || !maps.Equal(got.Weights, tt.wantWeights) || !strings.Contains(got.What, tt.wantWhat) {
				t.Fatalf("ChangeOf = %+v, %v; want flags %v, weights %v, what %q, ok %v", got, ok, tt.wantFlags, tt.wantWeights, tt.wantWhat, tt.ok)
			}
			if !ok {
				return
			}
			// Undoing it on the changed document gives the original back.
			c := tt.next.Clone()
			if err := (Action{Kind: Revert, Change: &got}).Apply(&c); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.Weights, base.Weights) || c.Flags["cart"] != base.Flags["cart"] || c.Flags["pay"].Percent != 0 {
				t.Errorf("undone: weights %v flags %v; want %v %v", c.Weights, c.Flags, base.Weights, base.Flags)
			}
		})
	}
}

func TestJudgeCriteria(t *testing.T) {
	dbCrit := gateway.Criterion{Name: "db_connections", Kind: gateway.CriterionDatabase, Database: "main", Above: 90, For: gateway.Duration(time.Minute)}
	g := testGuard()
	g.Criteria = []gateway.Criterion{dbCrit}
	snap := snapshot(t, map[string]float64{"blue": 100, "green": 0}, map[string]float64{"cart": 50}, g)
	breach := func(since time.Duration) CriterionState {
		return CriterionState{Criterion: dbCrit, Since: judgeNow.Add(-since),
			Last: Sample{Time: judgeNow, Value: 93, Text: "93.0% of connections (93 of 100)", Breach: true}}
	}
	raised := &Change{Version: 6, Time: judgeNow.Add(-time.Second), Flags: map[string]float64{"cart": 10}, What: "flag cart raised 10% → 50%"}
	old := &Change{Version: 3, Time: judgeNow.Add(-time.Hour), Flags: map[string]float64{"cart": 10}, What: "flag cart raised 10% → 50%"}
	tests := []struct {
		name         string
		state        CriterionState
		change       *Change
		lastFallback time.Time
		lastRefusal  time.Time
		wantKind     ActionKind
		wantReason   []string
		wantWaiting  bool
	}{
		{"held: the newest change is rolled back", breach(2 * time.Minute), raised, time.Time{}, time.Time{}, Revert,
			[]string{"criterion db_connections", "93.0% of connections (93 of 100) > 90%", "rolling back v6", "flag cart raised"}, false},
		{"not held for long enough", breach(10 * time.Second), raised, time.Time{}, time.Time{}, None, nil, true},
		{"no change within the window: an event", breach(2 * time.Minute), old, time.Time{}, time.Time{}, CriterionBreach,
			[]string{"criterion db_connections", "no change within 2s"}, false},
		{"no change at all: an event", breach(2 * time.Minute), nil, time.Time{}, time.Time{}, CriterionBreach,
			[]string{"no change within"}, false},
		{"cooling down: nothing written", breach(2 * time.Minute), raised, judgeNow.Add(-time.Second), time.Time{}, None, nil, false},
		{"event repeated at most once per cooldown", breach(2 * time.Minute), nil, time.Time{}, judgeNow.Add(-time.Second), None, nil, false},
		{"no breach", CriterionState{Criterion: dbCrit, Last: Sample{Time: judgeNow, Value: 50}}, raised, time.Time{}, time.Time{}, None, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view, act := Judge(Input{Snapshot: snap, Policy: Compile(g), Window: windowOf(t, snap, nil),
				Criteria: []CriterionState{tt.state}, Change: tt.change,
				LastFallback: tt.lastFallback, LastRefusal: tt.lastRefusal, Now: judgeNow})
			if act.Kind != tt.wantKind {
				t.Fatalf("action %v (%s), want %v", act.Kind, act.Reason, tt.wantKind)
			}
			for _, w := range tt.wantReason {
				if !strings.Contains(act.Reason, w) {
					t.Errorf("reason %q does not say %q", act.Reason, w)
				}
			}
			cv, ok := view.Criteria["db_connections"]
			if !ok || cv.Value != tt.state.Last.Value || (cv.Waiting != "") != tt.wantWaiting || (cv.Breach != "") != tt.state.Last.Breach {
				t.Errorf("view %+v; want value %g, waiting %v", cv, tt.state.Last.Value, tt.wantWaiting)
			}
			if act.Kind == Revert && (act.Subject != "criterion:db_connections" || act.Change.Version != 6) {
				t.Errorf("action %+v, want the criterion's subject and the change of v6", act)
			}
		})
	}
}

// TestJudgeProxyFiguresFirst: when a pool breaches too, its fallback wins
// over the criterion's rollback: the proxy's figures name the culprit.
func TestJudgeProxyFiguresFirst(t *testing.T) {
	c := gateway.Criterion{Name: "health", Kind: gateway.CriterionHTTP, URL: "http://127.0.0.1:1/health", Status: 200}
	g := testGuard()
	g.Criteria = []gateway.Criterion{c}
	snap := snapshot(t, map[string]float64{"blue": 80, "green": 20}, nil, g)
	w := windowOf(t, snap, []traffic{{pool: "blue", n: 100}, {pool: "green", n: 40, errs: 40}})
	_, act := Judge(Input{Snapshot: snap, Policy: Compile(g), Window: w, Now: judgeNow,
		Criteria: []CriterionState{{Criterion: c, Since: judgeNow, Last: Sample{Time: judgeNow, Breach: true, Text: "status 503, want 200"}}},
		Change:   &Change{Version: 6, Time: judgeNow, Weights: map[string]float64{"blue": 100, "green": 0}, What: "weights moved"}})
	if act.Kind != Fallback || act.Name != "green" {
		t.Fatalf("action %+v, want green's fallback", act)
	}
}

// TestJudgeShowsPeerCriteria: an instance that does not probe the
// criteria shows them as the elected one published them, and never acts
// on them; the one that probes shows its own.
func TestJudgeShowsPeerCriteria(t *testing.T) {
	c := gateway.Criterion{Name: "health", Kind: gateway.CriterionHTTP, URL: "http://127.0.0.1:1/health", Status: 200}
	g := testGuard()
	g.Criteria = []gateway.Criterion{c}
	snap := snapshot(t, map[string]float64{"blue": 100, "green": 0}, nil, g)
	peer := map[string]CriterionView{"health": {Kind: "http", Value: 503, Breach: "status 503, want 200"}}
	view, act := Judge(Input{Snapshot: snap, Policy: Compile(g), Window: windowOf(t, snap, nil), Now: judgeNow, PeerCriteria: peer,
		Change: &Change{Version: 6, Time: judgeNow, Weights: map[string]float64{"blue": 0, "green": 100}, What: "weights moved"}})
	if view.Criteria["health"].Value != 503 || act.Kind != None {
		t.Errorf("view %+v, action %v; want the peer's criteria shown and nothing done", view.Criteria, act.Kind)
	}
	own := []CriterionState{{Criterion: c, Last: Sample{Time: judgeNow, Value: 200, Text: "status 200 in 3ms"}}}
	view, _ = Judge(Input{Snapshot: snap, Policy: Compile(g), Window: windowOf(t, snap, nil), Now: judgeNow, PeerCriteria: peer, Criteria: own})
	if view.Criteria["health"].Value != 200 {
		t.Errorf("view %+v; want this instance's own sample", view.Criteria)
	}
}

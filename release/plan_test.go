package release

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)

// shipped is a finished release of shop: it raised new_cart 5 → 50,
// created dark_mode, put v2 on green and moved all traffic there, applied
// a change set to payments and edited search, and migrated main 3 → 5.
func shipped() Release {
	return Release{
		ID: "r-20261129-200000-0001", Name: "v2", Deployment: "shop", Pool: "green", Label: "v2",
		Status: Finished,
		Before: State{
			Weights:   map[string]float64{"blue": 100, "green": 0},
			Flags:     map[string]float64{"new_cart": 5},
			Pools:     map[string]PoolState{"blue": {Upstreams: []string{"b:1"}, Label: "v1"}, "green": {Upstreams: []string{"g:1"}, Label: "v0"}},
			Services:  map[string]uint64{"payments": 3, "search": 7},
			Databases: map[string]int64{"main": 3},
		},
		After: &State{
			Weights:    map[string]float64{"blue": 0, "green": 100},
			Flags:      map[string]float64{"new_cart": 50, "dark_mode": 10},
			Pools:      map[string]PoolState{"blue": {Upstreams: []string{"b:1"}, Label: "v1"}, "green": {Upstreams: []string{"g:2"}, Label: "v2"}},
			Services:   map[string]uint64{"payments": 4, "search": 8},
			ChangeSets: []string{"cs-1"},
			Databases:  map[string]int64{"main": 5},
		},
	}
}

// live is the state right after r finished, with main's down undoing two
// expand migrations.
func live(r Release) Now {
	return Now{
		State: *r.After,
		Undo:  map[string][]Migration{"main": {{Version: 5, File: "00005_b.sql"}, {Version: 4, File: "00004_a.sql"}}},
	}
}

func step(t *testing.T, steps []Step, kind StepKind) Step {
	t.Helper()
	i := slices.IndexFunc(steps, func(s Step) bool { return s.Kind == kind })
	if i < 0 {
		t.Fatalf("no %s step in %+v", kind, steps)
	}
	return steps[i]
}

func TestPlanRollbackUndoesEverythingInOrder(t *testing.T) {
	r := shipped()
	steps := PlanRollback(r, live(r), PlanOptions{RestoreData: true})
	var kinds []StepKind
	for _, s := range steps {
		kinds = append(kinds, s.Kind)
		if s.Status != StepPending || s.Plan == "" || len(s.Drift) != 0 {
			t.Errorf("%s: status %q, plan %q, drift %q; want pending, a plan and no drift", s.Kind, s.Status, s.Plan, s.Drift)
		}
	}
	if !slices.Equal(kinds, StepOrder) {
		t.Fatalf("steps %v, want %v", kinds, StepOrder)
	}
	flags := step(t, steps, StepFlags)
	if got, want := flags.Flags, map[string]float64{"new_cart": 5}; !maps.Equal(got, want) {
		t.Errorf("flags %v, want %v", got, want)
	}
	if got, want := flags.RemoveFlags, []string{"dark_mode"}; !slices.Equal(got, want) {
		t.Errorf("remove flags %v, want %v", got, want)
	}
	traffic := step(t, steps, StepTraffic)
	if got, want := traffic.Weights, r.Before.Weights; !maps.Equal(got, want) {
		t.Errorf("weights %v, want %v", got, want)
	}
	if got, want := traffic.Pools, map[string]PoolState{"green": r.Before.Pools["green"]}; !reflect.DeepEqual(got, want) {
		t.Errorf("pools %v, want %v", got, want)
	}
	config := step(t, steps, StepConfig)
	if got, want := config.ChangeSets, []string{"cs-1"}; !slices.Equal(got, want) {
		t.Errorf("change sets %v, want %v", got, want)
	}
	if got, want := config.Services, map[string]uint64{"payments": 3, "search": 7}; !maps.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	schema := step(t, steps, StepSchema)
	if got, want := schema.Databases, map[string]int64{"main": 3}; !maps.Equal(got, want) || !schema.RestoreData {
		t.Errorf("databases %v restore %v, want %v and true", got, schema.RestoreData, want)
	}
	for _, want := range []string{"00005_b.sql, 00004_a.sql", "restore its data snapshots"} {
		if !strings.Contains(schema.Plan, want) {
			t.Errorf("schema plan %q does not say %q", schema.Plan, want)
		}
	}
}

func TestPlanRollbackReportsDrift(t *testing.T) {
	tests := []struct {
		name      string
		force     bool
		wantFlags map[string]float64
		wantDrift string
	}{
		{"left alone", false, nil, "left alone (--force sets it back to 5%)"},
		{"forced", true, map[string]float64{"new_cart": 5}, "set back anyway (--force)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shipped()
			now := live(r)
			now.Flags = map[string]float64{"new_cart": 30} // someone moved it, and deleted dark_mode
			s := step(t, PlanRollback(r, now, PlanOptions{Force: tt.force}), StepFlags)
			if !maps.Equal(s.Flags, tt.wantFlags) {
				t.Errorf("flags %v, want %v", s.Flags, tt.wantFlags)
			}
			if len(s.Drift) != 1 || !strings.Contains(s.Drift[0], "it left it at 50%, it is now 30%") || !strings.Contains(s.Drift[0], tt.wantDrift) {
				t.Errorf("drift %q, want one naming 50%% → 30%% and %q", s.Drift, tt.wantDrift)
			}
		})
	}
}

func TestPlanRollbackReportsAChangedWayBack(t *testing.T) {
	r := shipped()
	now := live(r)
	now.Pools = map[string]PoolState{"blue": {Upstreams: []string{"b:9"}, Label: "v1-hotfix"}, "green": r.After.Pools["green"]}
	s := step(t, PlanRollback(r, now, PlanOptions{}), StepTraffic)
	if _, ok := s.Pools["blue"]; ok || len(s.Drift) != 1 || !strings.Contains(s.Drift[0], "pool blue, which takes traffic back, changed since the release started: it ran b:1 (v1), it runs b:9 (v1-hotfix) now") {
		t.Errorf("pools %v, drift %q; want blue left as it is and the change reported", s.Pools, s.Drift)
	}
}

func TestPlanRollbackSkipsWhatIsBackAlready(t *testing.T) {
	r := shipped()
	now := Now{State: r.Before, Reverted: map[string]string{"cs-1": "cs-2"}}
	steps := PlanRollback(r, now, PlanOptions{})
	for _, s := range steps {
		if s.Status != StepSkipped {
			t.Errorf("%s: status %q (%s), want skipped", s.Kind, s.Status, s.Plan)
		}
	}
	if Undoes(steps) {
		t.Error("Undoes = true for a plan of skipped steps")
	}
	if c := step(t, steps, StepConfig); len(c.Drift) != 1 || !strings.Contains(c.Drift[0], "reverted already by cs-2") {
		t.Errorf("config drift %q, want the change set reverted already", c.Drift)
	}
}

func TestPlanRollbackOfAnOpenRelease(t *testing.T) {
	r := shipped()
	after := *r.After
	r.After, r.Status = nil, Open
	steps := PlanRollback(r, Now{State: after}, PlanOptions{})
	if got := step(t, steps, StepTraffic).Weights; !maps.Equal(got, r.Before.Weights) {
		t.Errorf("an open release's traffic step sets %v, want %v", got, r.Before.Weights)
	}
	if Undoes(PlanRollback(r, Now{State: r.Before}, PlanOptions{})) {
		t.Error("an open release that changed nothing has something to undo")
	}
}

func TestGate(t *testing.T) {
	r := shipped()
	r.Databases = map[string]SchemaNeed{"main": {Version: 5, MinVersion: 4}}
	releases := []Release{r}
	tests := []struct {
		name     string
		pool     string
		label    string
		applied  []Migration
		wantCode bool
		wantErr  string
	}{
		{"the release's own code, contract above its need", "green", "v2", []Migration{{Version: 6, File: "00006_drop.sql", Contract: true}}, true, "pool green runs release v2"},
		{"the release's own code, contract within its need", "green", "v2", []Migration{{Version: 5, File: "00005_b.sql", Contract: true}}, true, ""},
		{"the code from before the release, only expands since", "blue", "v1", []Migration{{Version: 4, File: "00004_a.sql"}, {Version: 5, File: "00005_b.sql"}}, true, ""},
		{"the code from before the release, a contract since", "blue", "v1", []Migration{{Version: 5, File: "00005_b.sql", Contract: true}}, true, "the code from before release r-20261129-200000-0001 (v1)"},
		{"a label no release names", "blue", "v9", []Migration{{Version: 6, File: "00006_drop.sql", Contract: true}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, ok := CodeOn(tt.pool, PoolState{Label: tt.label}, releases)
			if ok != tt.wantCode {
				t.Fatalf("CodeOn found %v, want %v", ok, tt.wantCode)
			}
			e := Gate(code, map[string][]Migration{"main": tt.applied})
			if tt.wantErr == "" {
				if e != nil {
					t.Fatalf("Gate refused: %v", e)
				}
				return
			}
			if e == nil {
				t.Fatal("Gate let it through")
			}
			for _, want := range []string{tt.wantErr, "00005_b.sql", "--force", "switchback migrate snapshot restore"} {
				if want == "00005_b.sql" && tt.pool == "green" {
					want = "00006_drop.sql"
				}
				if !strings.Contains(e.Error(), want) {
					t.Errorf("refusal %q does not say %q", e, want)
				}
			}
		})
	}
}

func TestEntering(t *testing.T) {
	got := Entering(map[string]float64{"blue": 100, "green": 0, "red": 0}, map[string]float64{"blue": 50, "green": 50, "red": 0})
	if want := []string{"green"}; !slices.Equal(got, want) {
		t.Errorf("Entering = %v, want %v", got, want)
	}
}

package drill_test

import (
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/drill"
)

// The migration drill in the sandbox, its rollback run by the switchback
// binary as `switchback drill migration` runs it: 100,000 rows, an expand
// and a data migration, down and snapshot restore, under the 30 s goal.
func TestMigrationInSandbox(t *testing.T) {
	res := drill.Run(t.Context(), env(t, drill.Manual), drill.Lookup("migration"), drill.Manual, drill.Options{})
	if !res.Passed || res.Flagged || !res.StateEqual {
		t.Fatalf("got passed=%v flagged=%v state_equal=%v error=%q diff=%s steps=%+v", res.Passed, res.Flagged, res.StateEqual, res.Error, diffLines(res.Diff), res.Steps)
	}
	var commands int
	for _, s := range res.Steps {
		if s.Command != "" {
			commands++
			if !strings.HasPrefix(s.Command, "switchback migrate ") {
				t.Errorf("rollback step %q: want a switchback migrate command", s.Command)
			}
		}
	}
	if commands != 3 {
		t.Errorf("%d rollback commands run, want down, snapshot restore, down: %+v", commands, res.Steps)
	}
	if r := res.Durations.Recovered; r == nil || *r > 30000 {
		t.Errorf("trigger to recovered %v ms: want under the 30 s goal", ms(r))
	}
	t.Logf("migration/manual: decided %s recovered %s ms, total %d ms", ms(res.Durations.Decided), ms(res.Durations.Recovered), res.Durations.Total)

	guard := drill.Run(t.Context(), env(t, drill.Guard), drill.Lookup("migration"), drill.Guard, drill.Options{})
	if guard.NotApplicable == "" || len(guard.Steps) != 0 {
		t.Errorf("guard trigger: %+v, want not applicable and nothing run", guard)
	}
}

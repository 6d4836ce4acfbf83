package drill_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/drill"
)

// The release drill in the sandbox: a release raises a flag, changes two
// services in one change set, flips all traffic to green and runs an
// expand migration through the gateway's named database; green then
// fails, and the runbook's one command, run by the switchback binary,
// rolls everything back. The state after must be the state before, and
// the rollback's own steps are in the result, timed.
func TestReleaseInSandbox(t *testing.T) {
	res := drill.Run(t.Context(), env(t, drill.Manual), drill.Lookup("release"), drill.Manual, fast)
	if !res.Passed || res.Flagged || !res.StateEqual || !res.OK() {
		t.Fatalf("got passed=%v flagged=%v state_equal=%v error=%q diff=%s steps=%+v", res.Passed, res.Flagged, res.StateEqual, res.Error, diffLines(res.Diff), res.Steps)
	}
	var commands []string
	for _, s := range res.Steps {
		if s.Command != "" {
			commands = append(commands, s.Command)
		}
	}
	if len(commands) != 1 || !strings.HasPrefix(commands[0], "switchback release rollback ") {
		t.Fatalf("rollback commands %q: want the one `switchback release rollback ID` the runbook prints", commands)
	}
	var kinds []string
	for _, s := range res.Steps {
		if k, ok := strings.CutPrefix(s.Name, "release "); ok {
			_, kind, _ := strings.Cut(k, " rollback step: ")
			kinds = append(kinds, kind)
			if s.Error != "" || s.StartMS < res.TriggerAtMS {
				t.Errorf("release step %+v: want done, after the trigger at %d ms", s, res.TriggerAtMS)
			}
			t.Logf("release rollback step %-8s %4d ms  %s", kind, s.DurationMS, strings.ReplaceAll(s.Output, "\n", " "))
		}
	}
	if !slices.Equal(kinds, []string{"flags", "traffic", "config", "schema"}) {
		t.Fatalf("release steps %q: want flags, traffic, config, schema from the release record", kinds)
	}
	d := res.Durations
	if d.Recovered == nil || *d.Recovered > 60000 {
		t.Fatalf("trigger to recovered %s ms: want under the 60 s goal", ms(d.Recovered))
	}
	t.Logf("release/manual: decided %s ms, recovered %s ms, %d of %d requests failed, total %d ms", ms(d.Decided), ms(d.Recovered), res.FailedRequests, res.Requests, res.Durations.Total)

	guard := drill.Run(t.Context(), env(t, drill.Guard), drill.Lookup("release"), drill.Guard, fast)
	if guard.NotApplicable == "" || !strings.Contains(guard.NotApplicable, "does not roll back a release") || len(guard.Steps) != 0 {
		t.Errorf("guard trigger: %+v, want not applicable, saying why, and nothing run", guard)
	}
}

// A release whose migration's down leaves the column its up added: the
// rollback reports success and clients recover, but the drill fails and
// its diff shows the column.
func TestReleaseWithABrokenDownFails(t *testing.T) {
	sb, err := drill.StartSandboxWith(t.Context(), binary, drill.SandboxOptions{ReleaseMigrations: os.DirFS("testdata/releasebrokendown")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	e, err := sb.Env(drill.Manual)
	if err != nil {
		t.Fatal(err)
	}
	res := drill.Run(t.Context(), e, drill.Lookup("release"), drill.Manual, fast)
	if res.Passed || res.StateEqual || res.OK() {
		t.Fatalf("got passed=%v state_equal=%v, want a failure", res.Passed, res.StateEqual)
	}
	if res.Durations.Recovered == nil {
		t.Fatalf("clients did not recover (%s): the broken down still rolls the release back", res.Error)
	}
	if len(res.Diff) != 1 || res.Diff[0].Part != "schema of "+drill.SandboxDatabase || !slices.ContainsFunc(res.Diff[0].Lines, func(l string) bool {
		return strings.HasPrefix(l, "+ ") && strings.Contains(l, "gift_wrap")
	}) {
		t.Fatalf("diff %s: want the schema, with column gift_wrap left behind", diffLines(res.Diff))
	}
	if !strings.Contains(res.Error, "differs") {
		t.Errorf("error %q: want it to say the state differs", res.Error)
	}
	if i := slices.IndexFunc(res.Steps, func(s drill.Step) bool { return s.Name == "cleanup" }); i < 0 || res.Steps[i].Error != "" {
		t.Errorf("steps %+v: want a cleanup that succeeded (down to 0 drops the table, column and all)", res.Steps)
	}
	t.Logf("broken release: %s%s", res.Error, diffLines(res.Diff))
}

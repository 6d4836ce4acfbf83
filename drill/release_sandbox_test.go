package drill_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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
	if i := slices.IndexFunc(res.Steps, func(s drill.Step) bool { return s.Name == "wait for recovery" }); i < 4 || !strings.Contains(res.Steps[i-1].Name, "rollback step: schema") {
		t.Errorf("steps %+v: want the release's steps just before waiting for recovery, in the order they ran", res.Steps)
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

// The release drill against a staging target, run by the switchback
// binary as an engineer would: with --database NAME and the gateway's
// Caddyfile it runs and passes; without a database the gateway knows, it
// is not applicable and says why.
func TestReleaseDrillAgainstStaging(t *testing.T) {
	sb := sandbox(t)
	run := func(t *testing.T, extra ...string) drill.Result {
		t.Helper()
		args := append([]string{"drill", "release", "--trigger", "manual", "--json", "--no-record",
			"--admin", sb.AdminURL, "--deployment", drill.SandboxUnguarded, "--traffic", sb.Traffic[drill.SandboxUnguarded]}, extra...)
		cmd := exec.CommandContext(t.Context(), binary, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("switchback %q: %v\n%s\n%s", args, err, out.String(), errb.String())
		}
		var rs []drill.Result
		if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) != 1 {
			t.Fatalf("--json: %v\n%s", err, out.String())
		}
		return rs[0]
	}
	t.Run("configured", func(t *testing.T) {
		res := run(t, "--database", drill.SandboxDatabase, "--config", sb.Caddyfile)
		if !res.Passed || !res.StateEqual || res.Target != sb.AdminURL {
			t.Fatalf("got %+v, want a passed release drill against the admin API", res)
		}
		t.Logf("release/manual against staging: recovered %s ms", ms(res.Durations.Recovered))
	})
	for _, tt := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"no database", nil, "give --database NAME"},
		{"not in the Caddyfile", []string{"--database", "nosuch", "--config", sb.Caddyfile}, "database nosuch in --config " + sb.Caddyfile},
		{"no Caddyfile", []string{"--database", drill.SandboxDatabase, "--config", filepath.Join(t.TempDir(), "Caddyfile")}, "database drill in --config"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.extra...)
			if res.NotApplicable == "" || !strings.Contains(res.NotApplicable, tt.want) || len(res.Steps) != 0 {
				t.Fatalf("got not_applicable %q error %q steps %d, want not applicable with %q and nothing run", res.NotApplicable, res.Error, len(res.Steps), tt.want)
			}
			t.Logf("not applicable: %s", res.NotApplicable)
		})
	}
}

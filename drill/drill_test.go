package drill_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/drill"
)

// binary is the switchback binary, built once. Without the race
// detector even when the tests have it: the drills measure the gateway's
// speed, and the gateway's own races are the e2e tests' business.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchback-drill-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "switchback")
	build := exec.Command("go", "build", "-o", binary, "github.com/a8e2c47e/switchback/cmd/switchback")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building switchback:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if shared.sb != nil {
		shared.sb.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// shared is one sandbox for the package's tests: starting one costs a
// gateway process and an etcd, and every drill leaves it as it found it.
var shared struct {
	once sync.Once
	sb   *drill.Sandbox
	err  error
}

func sandbox(t *testing.T) *drill.Sandbox {
	t.Helper()
	shared.once.Do(func() { shared.sb, shared.err = drill.StartSandbox(context.Background(), binary) })
	if shared.err != nil {
		t.Fatalf("sandbox: %v", shared.err)
	}
	return shared.sb
}

func env(t *testing.T, tr drill.Trigger) *drill.Env {
	t.Helper()
	e, err := sandbox(t).Env(tr)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fast bounds each drill well under the test's patience.
var fast = drill.Options{Timeout: 20 * time.Second}

func TestPatterns(t *testing.T) {
	for _, name := range []string{"flip", "flag", "config"} {
		for _, tr := range []drill.Trigger{drill.Manual, drill.Guard} {
			t.Run(name+"/"+string(tr), func(t *testing.T) {
				p := drill.Lookup(name)
				res := drill.Run(t.Context(), env(t, tr), p, tr, fast)
				if name == "config" && tr == drill.Guard {
					if res.NotApplicable == "" || res.Passed || len(res.Steps) != 0 {
						t.Fatalf("config with a guard trigger: got %+v, want not applicable and nothing run", res)
					}
					return
				}
				if !res.Passed || res.Flagged || !res.StateEqual || !res.OK() {
					t.Fatalf("got passed=%v flagged=%v state_equal=%v error=%q diff=%s steps=%+v", res.Passed, res.Flagged, res.StateEqual, res.Error, diffLines(res.Diff), res.Steps)
				}
				d := res.Durations
				if d.Recovered == nil || d.Decided == nil {
					t.Fatalf("durations %+v: want decided and recovered", d)
				}
				if tr == drill.Guard && d.Detected == nil {
					t.Fatalf("durations %+v: a guard trigger wants detected", d)
				}
				if tr == drill.Manual && d.Detected != nil {
					t.Fatalf("durations %+v: a manual trigger has no detection", d)
				}
				if *d.Recovered > 5000 {
					t.Errorf("recovered after %d ms: want well under the 2 s goal on a quiet machine, at most 5 s here", *d.Recovered)
				}
				if res.Requests < drill.RecoveredAfter {
					t.Errorf("requests %d: want at least the %d good answers of a recovery", res.Requests, drill.RecoveredAfter)
				}
				if tr == drill.Manual {
					i := slices.IndexFunc(res.Steps, func(s drill.Step) bool { return s.Command != "" })
					if i < 0 || !strings.HasPrefix(res.Steps[i].Command, "switchback ") {
						t.Fatalf("steps %+v: want the rollback command the engineer runs", res.Steps)
					}
				}
				t.Logf("%s/%s: detected %v decided %v recovered %d ms, %d of %d requests failed", name, tr, ms(d.Detected), ms(d.Decided), *d.Recovered, res.FailedRequests, res.Requests)
			})
		}
	}
}

func ms(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// deleteFlag is the flag pattern with a rollback that turns the flag off
// for everyone by deleting it: clients recover, the state does not.
type deleteFlag struct{ drill.Pattern }

func (d deleteFlag) Rollback(env *drill.Env) []drill.Command {
	return []drill.Command{{Args: []string{"flag", env.Deployment, drill.DrillFlag, "--delete", "--reason", "drill test"}, Explain: "delete the flag"}}
}

func TestRollbackThatDoesNotRestoreFails(t *testing.T) {
	res := drill.Run(t.Context(), env(t, drill.Manual), deleteFlag{drill.Lookup("flag")}, drill.Manual, fast)
	if res.Passed || res.StateEqual || res.OK() {
		t.Fatalf("got passed=%v state_equal=%v, want a failure", res.Passed, res.StateEqual)
	}
	if res.Durations.Recovered == nil {
		t.Fatalf("clients did not recover (%s): the test wants a rollback that recovers clients but not the state", res.Error)
	}
	if len(res.Diff) != 1 || !slices.Contains(res.Diff[0].Lines, "- "+`    "`+drill.DrillFlag+`": {`) {
		t.Fatalf("diff %+v: want the deployment's flag %s, removed", res.Diff, drill.DrillFlag)
	}
	if !strings.Contains(res.Error, "differs") {
		t.Errorf("error %q: want it to say the state differs", res.Error)
	}
}

func TestPastTheFlagLimitIsFlagged(t *testing.T) {
	o := fast
	o.FlagAfter = time.Millisecond
	res := drill.Run(t.Context(), env(t, drill.Manual), drill.Lookup("flip"), drill.Manual, o)
	if !res.Passed || !res.Flagged || res.OK() {
		t.Fatalf("got passed=%v flagged=%v ok=%v (error %q), want passed, flagged and not OK", res.Passed, res.Flagged, res.OK(), res.Error)
	}
	if res.FlagAfterMS != 1 {
		t.Errorf("flag_after_ms %d, want 1", res.FlagAfterMS)
	}
}

func diffLines(ds []drill.Difference) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "\n%s:\n", d.Part)
		for _, l := range d.Lines {
			if !strings.HasPrefix(l, "  ") {
				fmt.Fprintln(&b, l)
			}
		}
	}
	return b.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// slowEngineer runs the command after a pause, as a person would.
type slowEngineer struct {
	drill.CLI
	pause time.Duration
}

func (s slowEngineer) Run(ctx context.Context, args []string) (string, error) {
	time.Sleep(s.pause)
	return s.CLI.Run(ctx, args)
}

func TestManualTriggerNotesAGuardThatActedFirst(t *testing.T) {
	e := env(t, drill.Guard) // the guarded deployment
	e.CLI = slowEngineer{e.CLI, 1500 * time.Millisecond}
	res := drill.Run(t.Context(), e, drill.Lookup("flip"), drill.Manual, fast)
	if !res.Passed {
		t.Fatalf("got %q, want passed: the runbook's weights command finds the guard's fallback and leaves it", res.Error)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "the guard also acted (fallback of pool:green") {
		t.Fatalf("notes %q, want the guard's fallback noted", res.Notes)
	}
}

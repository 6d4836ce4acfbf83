package drill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/drill"
)

// staging runs `switchback drill` against the sandbox as a staging
// target: its admin API, one deployment, its site.
func staging(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	sb := sandbox(t)
	var out, errb bytes.Buffer
	args = append(args, "--admin", sb.AdminURL, "--deployment", drill.SandboxUnguarded, "--traffic", sb.Traffic[drill.SandboxUnguarded])
	code = drill.Main(t.Context(), args, &out, &errb, nil, binary)
	return code, out.String(), errb.String()
}

func TestStagingDrillIsRecordedInHistory(t *testing.T) {
	code, out, errs := staging(t, "flip", "--trigger", "manual", "--json")
	if code != cmdline.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	var rs []drill.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 || !rs[0].Passed || rs[0].Target != sandbox(t).AdminURL {
		t.Fatalf("--json: %v %s, want one passed flip drill against the admin API", err, out)
	}
	var hist bytes.Buffer
	if code := drill.Main(t.Context(), []string{"history", "--admin", sandbox(t).AdminURL, "--pattern", "flip"}, &hist, &hist, nil, binary); code != cmdline.ExitOK {
		t.Fatalf("history: exit %d: %s", code, hist.String())
	}
	if !strings.Contains(hist.String(), "flip") || !strings.Contains(hist.String(), "passed") || !strings.Contains(hist.String(), drill.SandboxUnguarded) {
		t.Errorf("history:\n%s\nwant the flip drill, passed, on %s", hist.String(), drill.SandboxUnguarded)
	}
}

func TestFlaggedDrillExitsNonZero(t *testing.T) {
	code, out, errs := staging(t, "flag", "--trigger", "manual", "--flag-after", "1ms", "--no-record")
	if code != cmdline.ExitError || !strings.Contains(out, "FLAGGED") {
		t.Fatalf("exit %d, want %d and FLAGGED\n%s\n%s", code, cmdline.ExitError, out, errs)
	}
}

func TestStagingRefusesADeploymentNotMarkedStaging(t *testing.T) {
	e := env(t, drill.Manual)
	mark := func(v string) {
		t.Helper()
		// Not t.Context(): the cleanup's mark runs after it ends.
		_, err := e.Admin.ApplyChangeSet(context.Background(), []configstore.ChangeSpec{{Deployment: e.Deployment, Patch: json.RawMessage(`{"environment": "` + v + `"}`)}},
			admin.WriteOptions{Reason: "drill test"})
		if err != nil {
			t.Fatal(err)
		}
	}
	mark("production")
	t.Cleanup(func() { mark("staging") })
	code, out, errs := staging(t, "flip", "--trigger", "manual", "--no-record")
	if code != cmdline.ExitError || !strings.Contains(errs, "marked production, not staging") || !strings.Contains(errs, "--i-know-this-is-production") {
		t.Fatalf("exit %d, want %d and a refusal naming the mark and the override\n%s\n%s", code, cmdline.ExitError, out, errs)
	}
	d, err := e.Admin.Status(t.Context(), e.Deployment)
	if err != nil || d.Environment != "production" {
		t.Fatalf("status: %v %q", err, d.Environment)
	}
	h, err := e.Admin.History(t.Context(), e.Deployment, 1)
	if err != nil || !strings.Contains(h[0].Summary, "environment") {
		t.Fatalf("the last version is %+v (%v), want the mark: a refused drill writes nothing", h, err)
	}
	if code, out, errs := staging(t, "flip", "--trigger", "manual", "--no-record", "--i-know-this-is-production"); code != cmdline.ExitOK {
		t.Fatalf("with --i-know-this-is-production: exit %d\n%s\n%s", code, out, errs)
	}
}

func TestCommandLineMistakes(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"flop"}, `pattern "flop": want one of flip, flag, config`},
		{[]string{"flip", "--trigger", "cron"}, `--trigger "cron": want manual, guard or both`},
		{[]string{"flip", "--rate", "0"}, "--rate 0: want 1 to 1000"},
		{[]string{"flip", "--admin", "http://127.0.0.1:1"}, "--deployment is missing"},
		{[]string{}, "want one pattern"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		if code := drill.Main(t.Context(), tt.args, &out, &errb, nil, binary); code != cmdline.ExitUsage || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("drill %q: exit %d, %q; want %d and %q", tt.args, code, errb.String(), cmdline.ExitUsage, tt.want)
		}
	}
}

func TestReportIsSelfContained(t *testing.T) {
	dir := t.TempDir()
	res := drill.Run(t.Context(), env(t, drill.Manual), drill.Lookup("flag"), drill.Manual, fast)
	if err := drill.WriteReport(dir, []drill.Result{res}, drill.DefaultFlagAfter); err != nil {
		t.Fatal(err)
	}
	html := readFile(t, dir+"/report.html")
	for _, want := range []string{"<svg", "trigger", "m-recovered", "switchback flag " + drill.SandboxUnguarded} {
		if !strings.Contains(html, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "src=", "href=\"http", "@import"} {
		if strings.Contains(html, bad) {
			t.Errorf("report.html has %q: it must not load anything", bad)
		}
	}
	if md := readFile(t, dir+"/report.md"); !strings.Contains(md, "| flag | manual | passed |") {
		t.Errorf("report.md:\n%s\nwant the flag drill's row", md)
	}
}

package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/caddytest"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// Drill results recorded through the admin API show in the gateway's
// metrics: the last success per pattern and the newest recovery time.
func TestDrillMetrics(t *testing.T) {
	e := etcdtest.Start(t)
	ups := testharness.StartBackends(t)
	aport := testharness.FreePort(t)
	caddytest.Start(t,
		fmt.Sprintf("switchback {\n\t\tstore etcd %s\n\t\tadmin 127.0.0.1:%d\n\t\tstate_dir %s\n\t}", e.Endpoint(), aport, t.TempDir()),
		fmt.Sprintf("\n\tswitchback checkout {\n\t\tpool blue %s\n\t\tpool green %s\n\t}", testharness.HostPort(ups.Blue), testharness.HostPort(ups.Green)))
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", aport)
	c, err := admin.NewClient(adminURL, "")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	ms := func(v int64) *int64 { return &v }
	for _, r := range []result.Result{
		{Pattern: "flip", Trigger: result.Manual, Passed: true, StateEqual: true, Started: at, Durations: result.Durations{Recovered: ms(1250), Total: 3000}},
		{Pattern: "migration", Trigger: result.Manual, Started: at, Error: "state differs", Durations: result.Durations{Recovered: ms(400), Total: 2000}},
		{Pattern: "migration", Trigger: result.Guard, NotApplicable: "no guard watches schemas", Started: at},
	} {
		if _, err := c.RecordDrill(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		fmt.Sprintf(`switchback_drill_last_success_timestamp_seconds{pattern="flip"} %g`, float64(at.Add(3*time.Second).Unix())),
		`switchback_drill_duration_seconds{pattern="flip"} 1.25`,
		// Drilled, never passed: 0, so an alert on its age fires.
		`switchback_drill_last_success_timestamp_seconds{pattern="migration"} 0`,
		`switchback_drill_duration_seconds{pattern="migration"} 0.4`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in /metrics", want)
		}
	}
	if t.Failed() {
		var drill []string
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, "switchback_drill_") {
				drill = append(drill, l)
			}
		}
		t.Logf("drill metrics:\n%s", strings.Join(drill, "\n"))
	}
}

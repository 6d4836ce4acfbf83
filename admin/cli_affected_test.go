package admin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/affected"
	"github.com/a8e2c47e/switchback/release"
)

func TestCLIReleaseAffected(t *testing.T) {
	var rel release.Release
	h := newHarness(t, func(o *Options) {
		o.Affected = func(deployment, id string) (affected.Log, bool) {
			return affected.Log{Capacity: 10, Since: testNow, Entries: []affected.Entry{
				{Time: testNow.Add(time.Second), Subject: "u1", Method: "POST", Path: "/orders", Status: 201, RequestID: "req-1", Pool: "green"},
			}}, id == rel.ID
		}
	})
	var err error
	if rel, _, err = h.store.CreateRelease(t.Context(), release.Release{Name: "v2", Deployment: "shop", Pool: "green"}); err != nil {
		t.Fatal(err)
	}
	if err := h.store.ReportApplied(t.Context(), "host-a", "shop", 1); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}

	code, out, _ := runCLI(t, env, "release", "affected", "v2")
	for _, want := range []string{"release " + rel.ID + " (v2) of shop, open: 1 requests, 0 dropped", "host-a", "POST", "/orders", "201", "req-1"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text: exit %d, want %q in\n%s", code, want, out)
		}
	}
	code, out, errOut := runCLI(t, env, "release", "affected", rel.ID, "--format", "csv")
	if code != 0 || !strings.HasPrefix(out, "time,instance,subject,method,path,status,request_id,pool,flags\n") ||
		!strings.Contains(out, ",host-a,u1,POST,/orders,201,req-1,green,") || !strings.Contains(errOut, "host-a=0") {
		t.Errorf("csv: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, env, "release", "affected", "v2", "--format", "json")
	var a Affected
	if err := json.Unmarshal([]byte(out), &a); code != 0 || err != nil || len(a.Entries) != 1 || a.Entries[0].RequestID != "req-1" {
		t.Errorf("json: exit %d, %v: %s", code, err, out)
	}
	if code, _, errOut := runCLI(t, env, "release", "affected", "v9"); code != 1 || !strings.Contains(errOut, `release "v9" not found`) {
		t.Errorf("unknown release: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "release", "affected", "v2", "--format", "xml"); code != 2 || !strings.Contains(errOut, `--format "xml"`) {
		t.Errorf("bad format: exit %d: %s", code, errOut)
	}
}

package admin

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/a8e2c47e/switchback/cmdline"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// grayInstances returns one instance id inside a gray release of percent
// and one outside it, by the bucketing spec.
func grayInstances(t *testing.T, service string, percent float64) (in, out string) {
	t.Helper()
	for i := 0; in == "" || out == ""; i++ {
		id := fmt.Sprintf("%s-%d", service, i)
		if float64(gateway.Bucket(configstore.GraySeed(service), id)) < percent*100 {
			in = id
		} else {
			out = id
		}
	}
	return in, out
}

func TestGrayAPI(t *testing.T) {
	h := newHarness(t, nil)
	h.putService("payments", `{"max": 20}`)
	in, out := grayInstances(t, "payments", 30)

	polled := make(chan response, 1)
	go func() { polled <- h.do("GET", "/api/v1/services/payments?wait=10s&after=1&instance="+in, "") }()
	resp := h.do("POST", "/api/v1/services/payments/gray", `{"patch": {"max": 50}, "percent": 30, "reason": "try"}`)
	if resp.status != http.StatusOK {
		t.Fatalf("gray = %d %s", resp.status, resp.body)
	}
	var started Service
	resp.decode(t, &started)
	if started.Gray == nil || started.Gray.Percent != 30 || started.Version != 2 {
		t.Fatalf("gray version = %+v", started)
	}
	var polledSvc Service
	if r := <-polled; r.status != http.StatusOK {
		t.Fatalf("long poll of the gray instance = %d %s", r.status, r.body)
	} else {
		r.decode(t, &polledSvc)
	}
	if !polledSvc.GrayApplied || string(polledSvc.Config) != `{"max":50}` {
		t.Fatalf("gray instance got %+v, want the gray document", polledSvc)
	}
	var main Service
	h.do("GET", "/api/v1/services/payments?instance="+out, "").decode(t, &main)
	if main.GrayApplied || string(main.Config) != `{"max":20}` || main.Gray != nil {
		t.Fatalf("instance outside got %+v, want the main document", main)
	}
	if r := h.do("POST", "/api/v1/services/payments/gray", `{"patch": {"max": 50}, "percent": 150}`); r.status != 400 || r.errorBody(t).Field != "percent" {
		t.Fatalf("percent 150 = %d %s", r.status, r.body)
	}

	env := map[string]string{"SWITCHBACK_ADMIN": h.srv.URL}
	if code, stdout, _ := runCLI(t, env, "config", "gray", "payments", "promote", "--reason", "good"); code != cmdline.ExitOK || !strings.Contains(stdout, "promoted gray") {
		t.Fatalf("promote = %d %q", code, stdout)
	}
	if code, _, _ := runCLI(t, env, "config", "gray", "payments", `{"max": 70}`, "--percent", "5"); code != cmdline.ExitOK {
		t.Fatalf("gray start = %d", code)
	}
	if code, stdout, _ := runCLI(t, env, "config", "gray", "payments", "abandon"); code != cmdline.ExitOK || !strings.Contains(stdout, "abandoned gray") {
		t.Fatalf("abandon = %d %q", code, stdout)
	}
	if r := h.do("POST", "/api/v1/services/payments/gray/abandon", `{}`); r.status != http.StatusNotFound || r.errorBody(t).Field != "gray" {
		t.Fatalf("abandon without gray = %d %s", r.status, r.body)
	}
	var hist History
	h.do("GET", "/api/v1/services/payments/history", "").decode(t, &hist)
	if len(hist.History) != 5 {
		t.Fatalf("history has %d versions, want 5 (create, gray, promote, gray, abandon)", len(hist.History))
	}
}

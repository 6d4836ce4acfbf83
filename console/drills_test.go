package console_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
)

// TestDrillsPage records drill results through the real admin API (as
// `switchback drill` does) and reads them on the console's drills page.
func TestDrillsPage(t *testing.T) {
	h, _ := localAdmin(t, 1)
	if body := getPage(t, h, "/ui/drills", http.StatusOK); !strings.Contains(body, "No drill results") {
		t.Errorf("an empty history does not say so:\n%s", body)
	}
	ms := func(v int64) *int64 { return &v }
	start := time.Now().UTC().Add(-2 * time.Hour)
	for _, res := range []result.Result{
		{Pattern: "flip", Trigger: result.Manual, Target: "sandbox", Passed: true, FlagAfterMS: 90000, Started: start,
			Durations: result.Durations{Recovered: ms(840), Total: 3000}, Requests: 400, FailedRequests: 3, StateEqual: true},
		{Pattern: "config", Trigger: result.Guard, Deployment: "checkout", Target: "https://staging.example", FlagAfterMS: 90000,
			Started: start.Add(time.Minute), Error: "the state after differs from the state before",
			Diff: []result.Difference{{Part: "service api", Before: "version 3", After: "version 4"}}},
		{Pattern: "migration", Trigger: result.Guard, Target: "sandbox", Started: start.Add(2 * time.Minute),
			NotApplicable: "a migration has no guard to trigger it"},
		{Pattern: "flag", Trigger: result.Manual, Target: "sandbox", Passed: true, Flagged: true, FlagAfterMS: 90000,
			Started: start.Add(3 * time.Minute), Durations: result.Durations{Recovered: ms(95000)}, StateEqual: true},
	} {
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/drills", strings.NewReader(string(b)))
		req.Host, req.RemoteAddr = "localhost", loopback
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Fatalf("record drill %s: %d %s", res.Pattern, rec.Code, rec.Body.String())
		}
	}

	body := getPage(t, h, "/ui/drills", http.StatusOK)
	for _, want := range []string{
		"<strong>840ms</strong>", "(limit 1m30s)", "3 of 400",
		`<strong class="bad">1m35s</strong>`, `status-rollback-failed">flagged<`,
		`status-rollback-failed">failed<`, "the state after differs", "<strong>service api</strong> did not come back: before version 3, after version 4",
		"checkout on https://staging.example",
		`status-rolled-back">not applicable<`, "a migration has no guard to trigger it",
		"2 h ago",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the drills page lacks %q:\n%s", want, body)
		}
	}
	// Newest first: flag (started last) before flip (first).
	if strings.Index(body, "<th scope=\"row\">flag</th>") > strings.Index(body, "<th scope=\"row\">flip</th>") {
		t.Error("drills are not listed newest first")
	}
	// config has never passed: the summary says so.
	summary := body[strings.Index(body, "Each pattern"):strings.Index(body, "Drill results")]
	if !strings.Contains(summary, `href="/ui/drills?pattern=config">config</a></th>`) || strings.Count(summary, "never, in the history kept") != 2 {
		t.Errorf("the summary does not say config and migration never passed:\n%s", summary)
	}

	flips := getPage(t, h, "/ui/drills?pattern=flip", http.StatusOK)
	if !strings.Contains(flips, "Drill results of flip") || strings.Contains(flips, "<th scope=\"row\">config</th>") {
		t.Errorf("the flip drills show other patterns:\n%s", flips)
	}
}

func getPage(t *testing.T, h http.Handler, target string, want int) string {
	t.Helper()
	rec := request(h, http.MethodGet, target, loopback, nil, nil)
	if rec.Code != want {
		t.Fatalf("GET %s: status %d, want %d\n%s", target, rec.Code, want, rec.Body.String())
	}
	return rec.Body.String()
}

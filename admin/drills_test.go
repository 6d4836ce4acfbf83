package admin

import (
	"net/http"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/drill/result"
)

func TestDrillsRecordedAndListed(t *testing.T) {
	h := newHarness(t, nil)
	c, err := NewClient(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	for _, p := range []string{"flip", "flag", "flip"} {
		if _, err := c.RecordDrill(t.Context(), result.Result{Pattern: p, Trigger: result.Manual, Passed: true, Started: started, Steps: []result.Step{{Name: "prepare"}}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Drills(t.Context(), "flip", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Pattern != "flip" || got[0].ID == "" || !got[0].Started.Equal(started) || len(got[0].Steps) != 1 {
		t.Fatalf("got %+v, want the two flip drills with their IDs, times and steps", got)
	}
	all, err := c.Drills(t.Context(), "", 1)
	if err != nil || len(all) != 1 || all[0].ID != got[0].ID {
		t.Fatalf("limit 1: %+v (%v), want the newest", all, err)
	}
}

func TestRecordDrillRefusesBadInput(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name, body, field string
	}{
		{"no pattern", `{"trigger": "manual", "started": "2026-11-29T20:00:00Z"}`, "pattern"},
		{"bad trigger", `{"pattern": "flip", "trigger": "cron", "started": "2026-11-29T20:00:00Z"}`, "trigger"},
		{"no start", `{"pattern": "flip", "trigger": "guard"}`, "started"},
		{"unknown field", `{"pattern": "flip", "trigger": "guard", "started": "2026-11-29T20:00:00Z", "colour": 1}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(http.MethodPost, "/api/v1/drills", tt.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", r.status, r.body)
			}
			if e := r.errorBody(t); tt.field != "" && e.Field != tt.field {
				t.Errorf("field %q (%s), want %q", e.Field, e.Error, tt.field)
			}
		})
	}
	if r := h.do(http.MethodGet, "/api/v1/drills", ""); r.status != http.StatusOK || string(r.body) != `{"drills":[]}`+"\n" && string(r.body) != `{"drills":[]}` {
		t.Errorf("after refusals: %d %s, want an empty list", r.status, r.body)
	}
}

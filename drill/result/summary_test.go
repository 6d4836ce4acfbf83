package result

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	at := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	ms := func(v int64) *int64 { return &v }
	got := Summarize([]Result{
		{Pattern: "flip", Passed: true, Started: at, Durations: Durations{Recovered: ms(800), Total: 2000}},
		// Newer, but flagged: no success, and its duration is the newest.
		{Pattern: "flip", Passed: true, Flagged: true, Started: at.Add(time.Hour), Durations: Durations{Recovered: ms(95000), Total: 99000}},
		// Older success: not the last.
		{Pattern: "flip", Passed: true, Started: at.Add(-time.Hour), Durations: Durations{Recovered: ms(700), Total: 1000}},
		{Pattern: "migration", Started: at, Error: "state differs", Durations: Durations{Recovered: ms(400), Total: 3000}},
		{Pattern: "migration", NotApplicable: "no guard", Started: at.Add(time.Hour)},
		{Pattern: "config", Started: at, Error: "not recovered", Durations: Durations{Total: 5000}},
	})
	tests := []struct {
		pattern      string
		lastSuccess  time.Time
		recovered    time.Duration
		hasRecovered bool
	}{
		{"flip", at.Add(2 * time.Second), 95 * time.Second, true},
		{"migration", time.Time{}, 400 * time.Millisecond, true},
		{"config", time.Time{}, 0, false},
	}
	for _, tt := range tests {
		s, ok := got[tt.pattern]
		if !ok {
			t.Errorf("%s: no summary", tt.pattern)
			continue
		}
		if !s.LastSuccess.Equal(tt.lastSuccess) || s.Recovered != tt.recovered || s.HasRecovered != tt.hasRecovered {
			t.Errorf("%s = %+v, want last success %v, recovered %v (%v)", tt.pattern, s, tt.lastSuccess, tt.recovered, tt.hasRecovered)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d patterns, want 3: %+v", len(got), got)
	}
}

package gateway

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestGuardValidateAndJSON(t *testing.T) {
	c := testConfig(10, nil)
	c.Guard = &Guard{ErrorRate: 5, P95: Duration(500 * time.Millisecond), Window: Duration(10 * time.Second), Errors: []string{"5xx", "429"}}
	c.Health = &Health{URI: "/health"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c.Guard)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"error_rate":5,"p95":"500ms","window":"10s","errors":["5xx","429"]}`; got != want {
		t.Errorf("guard JSON = %s, want %s", got, want)
	}
	st := c.Guard.ErrorStatuses()
	for code, want := range map[int]bool{500: true, 503: true, 429: true, 404: false, 200: false} {
		if st[code] != want {
			t.Errorf("status %d counts as error: %v, want %v", code, st[code], want)
		}
	}

	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"rate over 100", func(c *Config) { c.Guard.ErrorRate = 101 }, "guard.error_rate"},
		{"no ceiling", func(c *Config) { c.Guard.ErrorRate, c.Guard.P95 = 0, 0 }, "guard"},
		{"tiny window", func(c *Config) { c.Guard.Window = Duration(time.Millisecond) }, "guard.window"},
		{"baseline below 1", func(c *Config) { c.Guard.Baseline = 0.5 }, "guard.baseline"},
		{"bad error class", func(c *Config) { c.Guard.Errors = []string{"6xx"} }, "guard.errors"},
		{"health uri", func(c *Config) { c.Health.URI = "health" }, "health.uri"},
		{"health latency over a minute", func(c *Config) { c.Health.Latency = Duration(2 * time.Minute) }, "health.latency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := c.Clone()
			tt.edit(&cc)
			var fe *FieldError
			if err := cc.Validate(); !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("Validate() = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
}

package configstore

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
)

func TestRetentionRules(t *testing.T) {
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	hour := now.Add(time.Hour)
	doc := func(green float64, retained map[string]time.Time) Document {
		c := testConfig("shop")
		c.Weights = map[string]float64{"blue": 100 - green, "green": green}
		c.Retain = gateway.Duration(time.Hour)
		return Document{Config: c, Retained: retained}
	}
	blueUntil := map[string]time.Time{"blue": hour}
	tests := []struct {
		name          string
		prev          Document
		next          gateway.Config
		at            time.Time
		retainDropped bool
		want          map[string]time.Time
	}{
		{"a flip retains the pool it empties", doc(0, nil), doc(100, nil).Config, now, true, blueUntil},
		{"a write that keeps it at 0 keeps it", doc(100, blueUntil), doc(100, nil).Config, now.Add(30 * time.Minute), true, blueUntil},
		{"it ends with its time", doc(100, blueUntil), doc(100, nil).Config, now.Add(2 * time.Hour), true, nil},
		{"traffic back releases it", doc(100, blueUntil), doc(50, nil).Config, now.Add(time.Minute), true, nil},
		{"an undo retains nothing it empties", doc(100, nil), doc(0, nil).Config, now, false, nil},
		{"an undo back to blue releases blue, retains no green", doc(100, blueUntil), doc(0, nil).Config, now, false, nil},
		{"an undo keeps unrelated retention", doc(50, map[string]time.Time{"red": hour}), func() gateway.Config {
			c := doc(0, nil).Config
			c.Pools["red"] = gateway.Pool{Upstreams: []string{"127.0.0.1:9003"}}
			return c
		}(), now, false, map[string]time.Time{"red": hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retention(tt.prev, tt.next, tt.at, tt.retainDropped); !maps.EqualFunc(got, tt.want, time.Time.Equal) || (got == nil) != (tt.want == nil) {
				t.Errorf("retention = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDocumentLegacyRetained: documents stored before retention moved
// beside the config keep their rollback targets.
func TestDocumentLegacyRetained(t *testing.T) {
	until := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	legacy := `{"meta":{"version":2},"config":{"name":"shop","version":2,"retained":{"blue":"2026-11-23T03:00:00Z"}}}`
	var d Document
	if err := json.Unmarshal([]byte(legacy), &d); err != nil {
		t.Fatal(err)
	}
	if got, ok := d.RetainedUntil("blue", until.Add(-time.Hour)); !ok || !got.Equal(until) {
		t.Errorf("legacy document: blue retained until %v, %v; want %v", got, ok, until)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var again Document
	if err := json.Unmarshal(b, &again); err != nil || !again.Retained["blue"].Equal(until) {
		t.Errorf("round trip = %s, %v; want retained beside the config", b, err)
	}
}

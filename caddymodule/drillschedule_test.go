package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/drill"
	"github.com/a8e2c47e/switchback/drill/result"
	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

func TestDrillScheduleRefusesBadValues(t *testing.T) {
	tests := []struct {
		name  string
		block string
		want  []string
	}{
		{"every too short", "every 10s", []string{`drill every "10s"`, "at least 1m", "Caddyfile:4"}},
		{"every not a duration", "every monthly", []string{`drill every "monthly"`}},
		{"unknown pattern", "patterns flip chaos", []string{`drill pattern "chaos"`, "flip, flag, config, migration"}},
		{"no pattern", "patterns", []string{"drill patterns needs at least one"}},
		{"traffic without URL", "traffic checkout", []string{"drill traffic", "a deployment name and the URL"}},
		{"traffic not a URL", "traffic checkout checkout.staging", []string{"drill traffic", "https://checkout.staging"}},
		{"traffic twice", "traffic a http://x\n\t\t\ttraffic a http://y", []string{"drill traffic a given twice"}},
		{"every twice", "every 1h\n\t\t\tevery 2h", []string{"every"}},
		{"unknown setting", "cron 0 3 * * *", []string{`unknown drill setting "cron"`, "every, patterns, traffic, token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "{\n\tswitchback {\n\t\tdrill {\n\t\t\t" + tt.block + "\n\t\t}\n\t}\n}\n:8080 {\n\trespond ok\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapt succeeded; want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The elected instance's schedule, read from a real store: only the
// deployments marked staging that have a traffic URL, only the patterns
// not drilled against them within every.
func TestScheduledDrills(t *testing.T) {
	store := etcdtest.Start(t).Store(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, d := range []struct{ name, env string }{{"checkout", "staging"}, {"cart", "staging"}, {"shop", ""}, {"search", "test"}} {
		cfg := gateway.Config{
			Name:        d.name,
			Environment: d.env,
			Pools:       map[string]gateway.Pool{"blue": {Upstreams: []string{"127.0.0.1:9001"}}, "green": {Upstreams: []string{"127.0.0.1:9002"}}},
			Weights:     map[string]float64{"blue": 100, "green": 0},
		}
		if _, _, err := store.Bootstrap(t.Context(), cfg, configstore.Meta{Author: "test", Source: configstore.SourceBootstrap}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []result.Result{
		{Pattern: "flip", Trigger: result.Manual, Deployment: "checkout", Target: "http://127.0.0.1:9180", Started: now.Add(-time.Hour)},
		{Pattern: "flag", Trigger: result.Manual, Deployment: "checkout", Target: "http://127.0.0.1:9180", Started: now.Add(-800 * time.Hour)},
	} {
		b, _ := json.Marshal(r)
		if _, err := store.AppendDrill(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	a := &App{store: store, logger: zap.NewNop(), Drill: &DrillSchedule{Traffic: map[string]string{
		"checkout": "http://127.0.0.1:8080", "shop": "http://127.0.0.1:8081", "search": "http://127.0.0.1:8082",
	}}}
	got, err := a.scheduledDrills(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	// cart is staging but has no traffic URL; shop is production, search test.
	want := []drill.Scheduled{{Deployment: "checkout", Patterns: []string{"flag", "config"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestDrillAdminURL(t *testing.T) {
	tests := []struct{ admin, want string }{
		{"127.0.0.1:9180", "http://127.0.0.1:9180"},
		{":9180", "http://127.0.0.1:9180"},
		{"0.0.0.0:9180", "http://127.0.0.1:9180"},
		{"[::]:9180", "http://127.0.0.1:9180"},
		{"10.0.0.5:9180", "http://10.0.0.5:9180"},
	}
	for _, tt := range tests {
		if got := (&App{Admin: tt.admin}).adminURL(); got != tt.want {
			t.Errorf("adminURL(%q) = %q, want %q", tt.admin, got, tt.want)
		}
	}
}

package admin

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/gateway"
	"github.com/a8e2c47e/switchback/guard"
)

// TestGuardView: the API serves the guard's typed view and the Go client
// reads it back into the same value.
func TestGuardView(t *testing.T) {
	cfg := shopConfig()
	cfg.Version = 1
	cfg.Guard = &gateway.Guard{ErrorRate: 5}
	snap, err := gateway.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := guard.NewRegistry()
	m := reg.Meter([]string{"blue", "green"}, []string{"new-cart"})
	for i := range 40 {
		m.Record(0, uint64(i%2), i%2 == 1, time.Duration(i+1)*time.Millisecond)
	}
	want, _ := guard.Judge(guard.Input{
		Snapshot: snap, Policy: guard.Compile(cfg.Guard), Window: reg.Stats(), Instance: "host-a", Now: testNow,
		Health: map[string]guard.PoolHealth{"green": {Healthy: true, Checked: testNow, LastHealthy: testNow}},
	})
	if want.Flags["new-cart"].On.Breach == "" {
		t.Fatalf("the view to serve has no breach to show: %+v", want.Flags)
	}
	h := newHarness(t, func(o *Options) {
		o.Guard = func(name string) (guard.View, bool) { return want, name == "shop" }
	})
	c, err := NewClient(h.srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Guard(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("client read\n%+v\nwant\n%+v", got, want)
	}
	if r := h.do(http.MethodGet, "/api/v1/deployments/shop/guard", ""); !strings.Contains(string(r.body), `"new-cart":{"on":{"requests":20,`) {
		t.Errorf("flag cohorts not labelled: %s", r.body)
	}

	var apiErr *APIError
	if _, err := c.Guard(t.Context(), "nope"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("guard view of an unknown deployment: %v, want a 404", err)
	}
}

func TestDescribeGuard(t *testing.T) {
	tests := []struct {
		g    *gateway.Guard
		want string
	}{
		{nil, "no guard configured (nothing falls back automatically)"},
		{&gateway.Guard{ErrorRate: 5}, "falls back on error rate > 5% over 10s (at least 20 requests)"},
		{&gateway.Guard{ErrorRate: 2.5, P95: gateway.Duration(500 * time.Millisecond), MinRequests: 50, Baseline: 2, Window: gateway.Duration(time.Minute)},
			"falls back on error rate > 2.5% or p95 > 500ms over 1m0s (at least 50 requests, and 2× the baseline)"},
	}
	for _, tt := range tests {
		if got := describeGuard(tt.g); got != tt.want {
			t.Errorf("describeGuard(%+v) = %q, want %q", tt.g, got, tt.want)
		}
	}
}

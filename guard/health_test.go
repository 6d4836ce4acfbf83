package guard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/internal/testharness"
)

func TestChecker(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	c := NewChecker(time.Now)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(t.Context()) }()
	t.Cleanup(func() { <-done })

	c.Set(map[string][]string{"blue": {strings.TrimPrefix(srv.URL, "http://")}}, "/health", 10*time.Millisecond)
	testharness.WaitFor(t, "blue healthy", func() bool { h, _ := c.Health("blue"); return h.Healthy && !h.LastHealthy.IsZero() })

	healthy.Store(false)
	testharness.WaitFor(t, "blue unhealthy", func() bool { h, _ := c.Health("blue"); return !h.Healthy && strings.Contains(h.Error, "503") })
	h, _ := c.Health("blue")
	if h.LastHealthy.IsZero() || !h.LastHealthy.Before(h.Checked) {
		t.Errorf("unhealthy pool: last healthy %v, checked %v; want the earlier success kept", h.LastHealthy, h.Checked)
	}

	c.Set(nil, "", 0)
	if _, ok := c.Health("blue"); ok {
		t.Error("blue still reported after checks were turned off")
	}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCheckerLatencyBound: with a bound, an upstream that answers 200 but
// slowly fails its checks, and the error says how slow against what.
func TestCheckerLatencyBound(t *testing.T) {
	var delay atomic.Int64
	delay.Store(int64(300 * time.Millisecond))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(delay.Load())):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	c := NewChecker(time.Now)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(t.Context()) }()
	t.Cleanup(func() { <-done })

	tests := []struct {
		name    string
		bound   time.Duration
		delay   time.Duration
		healthy bool
		errText string
	}{
		{"slow without a bound", 0, 300 * time.Millisecond, true, ""},
		{"slow over the bound", 100 * time.Millisecond, 300 * time.Millisecond, false, "slower than the 100ms bound (health_latency)"},
		{"fast within the bound", 100 * time.Millisecond, 0, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delay.Store(int64(tt.delay))
			c.SetLatency(tt.bound)
			start := time.Now()
			c.Set(map[string][]string{"green": {strings.TrimPrefix(srv.URL, "http://")}}, "/health", 10*time.Millisecond)
			poll(t, tt.name, func() bool {
				h, ok := c.Health("green")
				return ok && h.Checked.After(start) && h.Healthy == tt.healthy && strings.Contains(h.Error, tt.errText)
			})
		})
	}
}

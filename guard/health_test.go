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

	c.Set(map[string]Target{"blue": {Upstreams: []string{strings.TrimPrefix(srv.URL, "http://")}}}, "/health", 10*time.Millisecond)
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

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestCheckerUsesPoolTransport(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	// What a pool's proxy transport with TLS does: upgrade http to https,
	// trusting the upstream's certificate.
	tlsClient := srv.Client().Transport
	viaTLS := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme = "https"
		return tlsClient.RoundTrip(r)
	})
	up := []string{strings.TrimPrefix(srv.URL, "https://")}

	c := NewChecker(time.Now)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(t.Context()) }()
	t.Cleanup(func() { <-done })

	c.Set(map[string]Target{"tls": {Upstreams: up, Transport: viaTLS}, "plain": {Upstreams: up}}, "/health", 10*time.Millisecond)
	testharness.WaitFor(t, "both pools checked", func() bool {
		a, _ := c.Health("tls")
		b, _ := c.Health("plain")
		return !a.Checked.IsZero() && !b.Checked.IsZero()
	})
	if h, _ := c.Health("tls"); !h.Healthy {
		t.Errorf("pool probed through its TLS transport: %+v, want healthy", h)
	}
	if h, _ := c.Health("plain"); h.Healthy {
		t.Errorf("pool probed in plain HTTP against a TLS upstream: %+v, want unhealthy", h)
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
			c.Set(map[string]Target{"green": {Upstreams: []string{strings.TrimPrefix(srv.URL, "http://")}}}, "/health", 10*time.Millisecond)
			testharness.WaitFor(t, tt.name, func() bool {
				h, ok := c.Health("green")
				return ok && h.Checked.After(start) && h.Healthy == tt.healthy && strings.Contains(h.Error, tt.errText)
			})
		})
	}
}

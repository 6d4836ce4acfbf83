package guard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
	poll(t, "blue healthy", func() bool { h, _ := c.Health("blue"); return h.Healthy && !h.LastHealthy.IsZero() })

	healthy.Store(false)
	poll(t, "blue unhealthy", func() bool { h, _ := c.Health("blue"); return !h.Healthy && strings.Contains(h.Error, "503") })
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
	poll(t, "both pools checked", func() bool {
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

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

	c.Set(map[string][]string{"blue": {strings.TrimPrefix(srv.URL, "http://")}}, "/health", 10*time.Millisecond)
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

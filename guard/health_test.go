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

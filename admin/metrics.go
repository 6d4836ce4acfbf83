package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the admin's own series, in the registry it was given.
type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchback_admin_requests_total",
		Help: "Admin API requests by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	if err := reg.Register(requests); err != nil {
		// A second Server on the same registry (a config reload that kept
		// it) shares the counter rather than failing.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		requests = existing
	}
	return &metrics{requests: requests}, nil
}

func (m *metrics) observe(method, route string, code int) {
	m.requests.WithLabelValues(methodLabel(method), route, strconv.Itoa(code)).Inc()
}

// methodLabel bounds the label's values: the method is client-chosen text.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

package ofrep

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the server's Prometheus metrics; a nil *metrics records
// nothing.
type metrics struct {
	evaluations *prometheus.CounterVec
	streams     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	f := promauto.With(reg)
	return &metrics{
		evaluations: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchback", Subsystem: "ofrep", Name: "requests_total",
			Help: "OFREP evaluation requests by endpoint (single, bulk) and outcome: ok, not_modified, an OpenFeature error code, unauthorized or forbidden.",
		}, []string{"endpoint", "outcome"}),
		streams: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "switchback", Subsystem: "ofrep", Name: "event_streams",
			Help: "Open OFREP event streams (web and mobile providers waiting for changes).",
		}),
	}
}

// Outcomes besides the OpenFeature error codes.
const (
	outcomeOK           = "ok"
	outcomeNotModified  = "not_modified"
	outcomeUnauthorized = "unauthorized"
	outcomeForbidden    = "forbidden"
)

// Endpoints, as labelled.
const (
	endpointSingle = "single"
	endpointBulk   = "bulk"
)

func (m *metrics) request(endpoint, outcome string) {
	if m != nil {
		m.evaluations.WithLabelValues(endpoint, outcome).Inc()
	}
}

func (m *metrics) streamOpen(delta float64) {
	if m != nil {
		m.streams.Add(delta)
	}
}

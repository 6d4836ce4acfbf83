package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/configstore"
)

// serviceMetrics are the series of service configuration: versions
// written, watchers connected, and how long after its write a version
// reached a watcher.
type serviceMetrics struct {
	versions *prometheus.CounterVec
	watchers *prometheus.GaugeVec
	lag      prometheus.Histogram
}

func newServiceMetrics(reg *prometheus.Registry) (*serviceMetrics, error) {
	versions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchback_service_config_versions_total",
		Help: "Service configuration versions written through this admin API, by service.",
	}, []string{"service"})
	watchers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchback_service_config_watchers",
		Help: "Long polls and event streams waiting for a service's next version.",
	}, []string{"service"})
	lag := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "switchback_service_config_delivery_seconds",
		Help:    "Time from a service version's write to its delivery to a watcher.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m := &serviceMetrics{versions: versions, watchers: watchers, lag: lag}
	for i, c := range []prometheus.Collector{versions, watchers, lag} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register service metrics: %w", err)
			}
			// A second Server on the same registry shares the series.
			switch i {
			case 0:
				m.versions, _ = are.ExistingCollector.(*prometheus.CounterVec)
			case 1:
				m.watchers, _ = are.ExistingCollector.(*prometheus.GaugeVec)
			case 2:
				m.lag, _ = are.ExistingCollector.(prometheus.Histogram)
			}
		}
	}
	if m.versions == nil || m.watchers == nil || m.lag == nil {
		return nil, errors.New("register service metrics: a collector of another type has the same name")
	}
	return m, nil
}

func (m *serviceMetrics) wrote(service string) { m.versions.WithLabelValues(service).Inc() }

func (m *serviceMetrics) watching(service string, delta float64) {
	m.watchers.WithLabelValues(service).Add(delta)
}

func (m *serviceMetrics) delivered(d configstore.ServiceDoc, now time.Time) {
	if lag := now.Sub(d.Meta.Time); lag >= 0 {
		m.lag.Observe(lag.Seconds())
	}
}

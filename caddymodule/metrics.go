package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/a8e2c47e/switchback/guard"
)

// trafficCollector exposes every live deployment's traffic, per pool and
// per flag cohort, computed at scrape time from the guard's meters: the
// request path pays nothing for it beyond the meters' atomic adds.
type trafficCollector struct{}

var (
	poolLabels = []string{"deployment", "pool"}
	flagLabels = []string{"deployment", "flag", "cohort"}

	poolRequests = prometheus.NewDesc("switchback_requests_total",
		"Requests proxied, per deployment and pool.", poolLabels, nil)
	poolErrors = prometheus.NewDesc("switchback_request_errors_total",
		"Requests that failed (transport failure or an error status under the guard's 'errors'), per deployment and pool.", poolLabels, nil)
	poolLatency = prometheus.NewDesc("switchback_request_duration_seconds",
		"Latency of proxied requests, per deployment and pool.", poolLabels, nil)
	flagRequests = prometheus.NewDesc("switchback_flag_requests_total",
		"Requests per flag cohort (cohort on: the flag was on for the request).", flagLabels, nil)
	flagErrors = prometheus.NewDesc("switchback_flag_request_errors_total",
		"Failed requests per flag cohort.", flagLabels, nil)
	flagLatency = prometheus.NewDesc("switchback_flag_request_duration_seconds",
		"Latency per flag cohort.", flagLabels, nil)
)

// Describe sends the metric descriptions.
func (trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolRequests, poolErrors, poolLatency, flagRequests, flagErrors, flagLatency} {
		ch <- d
	}
}

// Collect reads the meters of every live deployment.
func (trafficCollector) Collect(ch chan<- prometheus.Metric) {
	entries := map[string]deploymentEntry{}
	deployments.Range(func(k, v any) bool {
		entries[k.(string)] = v.(deploymentEntry)
		return true
	})
	for name, entry := range entries {
		pools, flags := entry.meters.Totals()
		for pool, t := range pools {
			emit(ch, t, poolRequests, poolErrors, poolLatency, name, pool)
		}
		for flag, cohorts := range flags {
			emit(ch, cohorts[0], flagRequests, flagErrors, flagLatency, name, flag, "off")
			emit(ch, cohorts[1], flagRequests, flagErrors, flagLatency, name, flag, "on")
		}
	}
}

func emit(ch chan<- prometheus.Metric, t guard.Total, requests, errors, latency *prometheus.Desc, labels ...string) {
	ch <- prometheus.MustNewConstMetric(requests, prometheus.CounterValue, float64(t.Requests), labels...)
	ch <- prometheus.MustNewConstMetric(errors, prometheus.CounterValue, float64(t.Errors), labels...)
	buckets := make(map[float64]uint64, len(guard.Bounds))
	for i, le := range guard.Bounds {
		buckets[le] = t.Buckets[i]
	}
	ch <- prometheus.MustNewConstHistogram(latency, t.Requests, t.Sum, buckets, labels...)
}

// Interface guard
var _ prometheus.Collector = trafficCollector{}

type appMetrics struct {
	appliedVersion *prometheus.GaugeVec
	switches       *prometheus.CounterVec
	applyErrors    *prometheus.CounterVec
	storeHealthy   prometheus.Gauge
	breaching      *prometheus.GaugeVec
	fallbacks      *prometheus.CounterVec
	events         *prometheus.CounterVec
}

func newAppMetrics(reg prometheus.Registerer) *appMetrics {
	f := promauto.With(reg)
	m := &appMetrics{
		appliedVersion: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "switchback", Name: "applied_version",
			Help: "Version of each deployment's document live on this instance.",
		}, []string{"deployment"}),
		switches: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchback", Name: "switches_total",
			Help: "Versions applied from the store, per deployment.",
		}, []string{"deployment"}),
		applyErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchback", Name: "apply_errors_total",
			Help: "Versions from the store this instance could not apply.",
		}, []string{"deployment"}),
		storeHealthy: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "switchback", Name: "store_healthy",
			Help: "1 when the store is reachable, 0 while serving the last applied versions without it.",
		}),
	}
	m.breaching = f.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "switchback", Name: "guard_breaching",
		Help: "1 while a pool or flag cohort is over its guard's ceilings (and baseline).",
	}, []string{"deployment", "kind", "name"})
	m.fallbacks = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchback", Name: "guard_fallbacks_total",
		Help: "Fallbacks this instance wrote: pool traffic moved (fallback) or flag set to 0% (flag_off).",
	}, []string{"deployment", "kind"})
	m.events = f.NewCounterVec(prometheus.CounterOpts{
		Namespace: "switchback", Name: "events_total",
		Help: "Events this instance recorded, by kind.",
	}, []string{"deployment", "kind"})
	m.storeHealthy.Set(1)
	return m
}

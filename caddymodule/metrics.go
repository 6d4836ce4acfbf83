package caddymodule

import (
	"github.com/prometheus/client_golang/prometheus"

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

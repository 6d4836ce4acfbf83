package caddymodule

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/drill/result"
)

var (
	drillLastSuccess = prometheus.NewDesc("switchback_drill_last_success_timestamp_seconds",
		"When the newest drill of a pattern that passed and was not flagged ended (Unix time; 0: none has). "+
			"Alert on time() minus it to catch a rollback path not proven lately.", []string{"pattern"}, nil)
	drillDuration = prometheus.NewDesc("switchback_drill_duration_seconds",
		"Trigger to recovered, as clients saw it, of the newest drill of a pattern that recovered.", []string{"pattern"}, nil)
)

// drillCacheFor is how long a read of the drill history serves scrapes:
// drills run monthly, scrapes come every few seconds from every
// Prometheus, and each read lists up to 1,000 results.
const drillCacheFor = 30 * time.Second

// drillCollector exports the stored drill history (configstore.Drills),
// read at scrape time, so every instance exports the same values whichever
// instance or sandbox recorded the drill.
type drillCollector struct {
	store *configstore.Store
	now   func() time.Time

	mu   sync.Mutex // guards sums and read
	sums map[string]result.Summary
	read time.Time
}

func newDrillCollector(store *configstore.Store, now func() time.Time) *drillCollector {
	return &drillCollector{store: store, now: now}
}

// Describe sends the metric descriptions.
func (*drillCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- drillLastSuccess
	ch <- drillDuration
}

// Collect exports the cached summaries, reading the store again when they
// are older than drillCacheFor. A failed read keeps the previous values:
// a store that is down does not make the drills unproven.
func (c *drillCollector) Collect(ch chan<- prometheus.Metric) {
	for pattern, s := range c.summaries() {
		var last float64
		if !s.LastSuccess.IsZero() {
			last = float64(s.LastSuccess.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(drillLastSuccess, prometheus.GaugeValue, last, pattern)
		if s.HasRecovered {
			ch <- prometheus.MustNewConstMetric(drillDuration, prometheus.GaugeValue, s.Recovered.Seconds(), pattern)
		}
	}
}

func (c *drillCollector) summaries() map[string]result.Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sums != nil && c.now().Sub(c.read) < drillCacheFor {
		return c.sums
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stored, err := c.store.Drills(ctx, 0)
	if err != nil {
		return c.sums
	}
	rs := make([]result.Result, 0, len(stored))
	for _, d := range stored {
		var r result.Result
		if json.Unmarshal(d.Result, &r) == nil {
			rs = append(rs, r)
		}
	}
	c.sums, c.read = result.Summarize(rs), c.now()
	return c.sums
}

// Interface guard
var _ prometheus.Collector = (*drillCollector)(nil)

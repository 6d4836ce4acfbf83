package configstore

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkUpdate is one compare-and-swap write (read current, mutate,
// validate, commit) on embedded etcd.
func BenchmarkUpdate(b *testing.B) {
	s := newStore(b)
	bootstrap(b, s, "shop")
	ctx := b.Context()
	g := 0.0
	for b.Loop() {
		g = 1 - g
		if _, err := s.Update(ctx, "shop", 0, testMeta("bench"), setWeights(g)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatchLatency measures from Update returning to the watcher's
// apply being called with that version, and reports the median and the
// 99th percentile.
func BenchmarkWatchLatency(b *testing.B) {
	s := newStore(b)
	bootstrap(b, s, "shop")
	ctx, cancel := context.WithCancel(b.Context())
	type applied struct {
		version uint64
		at      time.Time
	}
	got := make(chan applied, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, func(d Document) { got <- applied{d.Meta.Version, time.Now()} }, nil)
	}()
	b.Cleanup(func() { cancel(); <-done })
	<-got // version 1

	var lat []time.Duration
	g := 0.0
	for b.Loop() {
		g = 1 - g
		doc, err := s.Update(ctx, "shop", 0, testMeta("bench"), setWeights(g))
		if err != nil {
			b.Fatal(err)
		}
		written := time.Now()
		for a := range got {
			if a.version == doc.Meta.Version {
				// The event may arrive before the write's own response.
				lat = append(lat, max(a.at.Sub(written), 0))
				break
			}
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

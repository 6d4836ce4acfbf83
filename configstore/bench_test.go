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
// apply being called with that version (0 when the event beat the
// response), and from Update being called, and reports the median and the
// 99th percentile of each.
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

	var sinceReturn, sinceCall []time.Duration
	g := 0.0
	for b.Loop() {
		g = 1 - g
		called := time.Now()
		doc, err := s.Update(ctx, "shop", 0, testMeta("bench"), setWeights(g))
		if err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		for a := range got {
			if a.version == doc.Doc.Meta.Version {
				// The event often arrives before the write's own response.
				sinceReturn = append(sinceReturn, max(a.at.Sub(returned), 0))
				sinceCall = append(sinceCall, a.at.Sub(called))
				break
			}
		}
	}
	b.ReportMetric(percentile(sinceReturn, 0.50), "p50-µs")
	b.ReportMetric(percentile(sinceReturn, 0.99), "p99-µs")
	b.ReportMetric(percentile(sinceCall, 0.50), "p50-from-call-µs")
	b.ReportMetric(percentile(sinceCall, 0.99), "p99-from-call-µs")
}

func percentile(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	return float64(d[int(p*float64(len(d)-1))].Microseconds())
}

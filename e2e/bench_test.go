package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/internal/testharness"
	"github.com/a8e2c47e/switchback/internal/testharness/etcdtest"
)

// Run with -benchtime 1x: each benchmark does its own fixed number of
// operations and reports percentiles.

// BenchmarkPropagation times 200 changes from the admin API call to the
// moment every one of 3 instances has applied the new version (each
// instance reports it in etcd after applying; the watch on those reports is
// the clock's stop).
func BenchmarkPropagation(b *testing.B) {
	const instances, switches = 3, 200
	e := etcdtest.Start(b)
	bk := testharness.StartBackends(b)
	site := deployment(bk, "live blue")
	var gws []*gateway
	for i := range instances {
		gws = append(gws, startGateway(b, fmt.Sprintf("gw-%d", i), e, site, ""))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports, err := e.Store(b).WatchApplied(ctx, "checkout")
	if err != nil {
		b.Fatal(err)
	}

	// applied[v] holds the instances that reported version v; a store
	// re-writing its reports under a new lease reports a version again.
	var mu sync.Mutex
	applied := map[uint64]map[string]bool{}
	allAt := map[uint64]chan struct{}{}
	go func() {
		for r := range reports {
			mu.Lock()
			if applied[r.Version] == nil {
				applied[r.Version] = map[string]bool{}
			}
			applied[r.Version][r.Instance] = true
			if len(applied[r.Version]) == instances {
				if ch, ok := allAt[r.Version]; ok {
					close(ch)
					delete(allAt, r.Version)
				}
			}
			mu.Unlock()
		}
	}()

	client := gws[0].admin(b)
	var lat []time.Duration
	for b.Loop() {
		lat = lat[:0]
		for i := range switches {
			d, err := client.Status(ctx, "checkout")
			if err != nil {
				b.Fatal(err)
			}
			next := d.Version + 1
			done := make(chan struct{})
			mu.Lock()
			allAt[next] = done
			mu.Unlock()
			start := time.Now()
			// Alternate green and blue live; it starts at blue.
			weights := map[string]float64{"blue": float64(i % 2 * 100), "green": float64(100 - i%2*100)}
			if _, err := client.SetWeights(ctx, "checkout", weights, admin.WriteOptions{Reason: "bench", IfMatch: d.Version}); err != nil {
				b.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				b.Fatalf("version %d did not reach all %d instances within 10 s", next, instances)
			}
			lat = append(lat, time.Since(start))
		}
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(float64(len(lat)), "changes")
}

// BenchmarkFlipUnderLoad flips 100 times, each flip applied by all 3
// instances before the next, while they serve 1,000 requests/s in total,
// and counts the failed requests.
func BenchmarkFlipUnderLoad(b *testing.B) {
	const flips, rps = 100, 1000
	e := etcdtest.Start(b)
	bk := testharness.StartBackends(b)
	site := deployment(bk, "live blue")
	gws := []*gateway{startGateway(b, "gw-0", e, site, ""), startGateway(b, "gw-1", e, site, ""), startGateway(b, "gw-2", e, site, "")}
	for b.Loop() {
		rec := newRecorder()
		stop := rec.run(b, rps, gws...)
		testharness.WaitFor(b, "traffic", func() bool { return rec.count.Load() >= rps/2 })
		client := gws[0].admin(b)
		for i := range flips {
			d, err := client.Flip(context.Background(), "checkout", admin.WriteOptions{Reason: "bench flip " + strconv.Itoa(i)})
			if err != nil {
				b.Fatal(err)
			}
			pool := "green"
			if i%2 == 1 {
				pool = "blue"
			}
			for _, g := range gws {
				testharness.WaitFor(b, "convergence", func() bool {
					p, v, err := g.served(b, "probe")
					return err == nil && p == pool && v == fmt.Sprint(d.Version)
				})
			}
		}
		stop()
		_, failed := rec.sinceFault(time.Time{})
		if failed > 0 {
			b.Logf("failed requests: %v", rec.failures())
		}
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(float64(rec.count.Load()), "requests")
		b.ReportMetric(flips, "flips")
	}
}

// BenchmarkFallback measures, at several request rates, the time from a
// fault on green (every response a 500) to the last response the client
// gets from green, with the guard's defaults (10 s window, 20 samples) and
// a 50/50 split; and how many requests failed meanwhile.
func BenchmarkFallback(b *testing.B) {
	for _, rps := range []int{50, 200, 1000} {
		b.Run(fmt.Sprintf("rps=%d", rps), func(b *testing.B) {
			for b.Loop() {
				e := etcdtest.Start(b)
				bk := testharness.StartBackends(b)
				g := startGateway(b, "gw-0", e, deployment(bk, `weights blue 50 green 50
		guard {
			error_rate 5%
			p95 500ms
			baseline 2x
		}`), "")
				rec := newRecorder()
				stop := rec.run(b, rps, g)
				// Healthy traffic first, so the guard has a baseline.
				testharness.WaitFor(b, "healthy traffic", func() bool { return rec.count.Load() >= int64(rps*2) })
				faultAt := time.Now()
				testharness.SetFault(b, bk.Green.URL, `{"error_rate": 1}`)
				store := e.Store(b)
				testharness.WaitFor(b, "green off traffic", func() bool {
					doc, err := store.Get(context.Background(), "checkout")
					return err == nil && doc.Config.Weights["green"] == 0
				})
				// Keep sending a little longer to see that green is gone.
				settled := rec.count.Load()
				testharness.WaitFor(b, "traffic after the fallback", func() bool { return rec.count.Load() >= settled+int64(rps/2) })
				stop()
				last, failed := rec.sinceFault(faultAt)
				b.ReportMetric(float64(last.Milliseconds()), "ms_to_healthy")
				b.ReportMetric(float64(failed), "failed")
				b.ReportMetric(float64(rps), "req/s")
			}
		})
	}
}

// recorder remembers, per response of the traffic it runs, when it came
// and from which pool.
type recorder struct {
	count atomic.Int64
	mu    sync.Mutex
	resps []resp
}

type resp struct {
	at     time.Time
	pool   string
	failed bool
	status int
	err    string
}

func newRecorder() *recorder { return &recorder{} }

// run sends open-loop traffic at rps to gws (testharness.Traffic) until
// stop is called; requests in flight then finish, so none is cut off and
// miscounted.
func (r *recorder) run(b *testing.B, rps int, gws ...*gateway) (stop func()) {
	return testharness.StartTrafficObserved(b, rps, r.record, bases(gws)...).Stop
}

func (r *recorder) record(res testharness.Response) {
	rr := resp{at: res.At, pool: res.Pool, failed: res.Err != nil, status: res.Status}
	if res.Err != nil {
		rr.err = res.Err.Error()
	}
	r.mu.Lock()
	r.resps = append(r.resps, rr)
	r.mu.Unlock()
	r.count.Add(1)
}

// failures describes the failed responses, for a benchmark's log.
func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rr := range r.resps {
		if rr.failed {
			out = append(out, fmt.Sprintf("%s: status %d %s", rr.at.Format(time.StampMilli), rr.status, rr.err))
		}
	}
	return out
}

// sinceFault returns how long after the fault the last response from
// green came, and how many responses failed after the fault.
func (r *recorder) sinceFault(at time.Time) (last time.Duration, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rr := range r.resps {
		if rr.at.Before(at) {
			continue
		}
		if rr.failed {
			failed++
		}
		if rr.pool == "green" && rr.at.Sub(at) > last {
			last = rr.at.Sub(at)
		}
	}
	return last, failed
}

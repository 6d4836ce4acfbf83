package configclient_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configclient"
	"github.com/a8e2c47e/switchback/configstore"
)

// benchAPI is newAPI with a registry the benchmark reads the watcher
// gauge from.
func benchAPI(b *testing.B) (*configstore.Store, *httptest.Server, *prometheus.Registry) {
	b.Helper()
	c, err := testEtcd.Client()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	store, err := configstore.New(c, configstore.WithPrefix(fmt.Sprintf("/configclient-bench/%d", prefixes.Add(1))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	srv, err := admin.New(admin.Options{Store: store, Registry: reg, Audit: func(admin.Record) {}})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(hs.Close)
	return store, hs, reg
}

// benchClient keeps enough idle connections for every watcher.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConns: 4000, MaxIdleConnsPerHost: 4000}}

// seen is one watcher receiving one version.
type seen struct {
	watcher int
	version uint64
	at      time.Time
}

// rawPoll long-polls with plain HTTP from version after, reporting every
// version, until ctx ends.
func rawPoll(ctx context.Context, base, name string, id int, after uint64, out chan<- seen) {
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/services/%s?wait=60s&after=%d", base, name, after), nil)
		if err != nil {
			return
		}
		resp, err := benchClient.Do(req)
		if err != nil {
			continue
		}
		var v configclient.Version
		ok := resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil
		resp.Body.Close()
		if ok {
			after = v.Version
			out <- seen{id, v.Version, time.Now()}
		}
	}
}

// rawStream follows the event stream with plain HTTP until ctx ends.
func rawStream(ctx context.Context, base, name string, id int, out chan<- seen) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/services/"+name+"?follow=1", nil)
	if err != nil {
		return
	}
	resp, err := benchClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var v configclient.Version
			if json.Unmarshal([]byte(data), &v) == nil {
				out <- seen{id, v.Version, time.Now()}
			}
		}
	}
}

func percentiles(ds []time.Duration) (p50, p99, top time.Duration) {
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return at(0.50), at(0.99), ds[len(ds)-1]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkChangeSetRevertWatchers: a change set over three services is
// reverted with one call; 200 clients watch them (long poll, event stream
// and the Go client, mixed). Reported: p50, p99 and max of the time from
// the revert call until each client has the reverted version.
func BenchmarkChangeSetRevertWatchers(b *testing.B) {
	store, hs, _ := benchAPI(b)
	ctx, cancel := context.WithCancel(b.Context())
	services := []string{"payments", "search", "ledger"}
	for _, n := range services {
		if _, err := store.PutService(ctx, n, json.RawMessage(`{"timeout_ms": 1000}`), 0, meta()); err != nil {
			b.Fatal(err)
		}
	}
	const watchers = 200
	out := make(chan seen, 4*watchers)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		go func() {
			for range out { // let blocked reporters finish
			}
		}()
		wg.Wait()
		close(out)
	}()
	for i := range watchers {
		name := services[i%3]
		switch (i / 3) % 3 {
		case 0:
			wg.Go(func() { rawPoll(ctx, hs.URL, name, i, 1, out) })
		case 1:
			wg.Go(func() { rawStream(ctx, hs.URL, name, i, out) })
		default:
			wg.Go(func() {
				_ = configclient.Watch(ctx, configclient.Options{URL: hs.URL, Service: name, HTTP: benchClient},
					func(_ json.RawMessage, v configclient.Version) { out <- seen{i, v.Version, time.Now()} })
			})
		}
	}
	// waitAll collects until every watcher has reached version v.
	waitAll := func(v uint64, since time.Time) []time.Duration {
		lat := make([]time.Duration, 0, watchers)
		done := make(map[int]bool, watchers)
		for len(done) < watchers {
			s := <-out
			if s.version == v && !done[s.watcher] {
				done[s.watcher] = true
				lat = append(lat, s.at.Sub(since))
			}
		}
		return lat
	}
	var all []time.Duration
	version := uint64(1)
	b.ResetTimer()
	for range b.N {
		cs, err := store.ApplyChangeSet(ctx, []configstore.ChangeSpec{
			{Service: "payments", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
			{Service: "search", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
			{Service: "ledger", Patch: json.RawMessage(`{"timeout_ms": 2000}`)},
		}, meta())
		if err != nil {
			b.Fatal(err)
		}
		version++
		waitAll(version, time.Now())
		start := time.Now()
		if _, err := store.RevertChangeSet(ctx, cs.ID, false, meta()); err != nil {
			b.Fatal(err)
		}
		version++
		all = append(all, waitAll(version, start)...)
	}
	b.StopTimer()
	p50, p99, top := percentiles(all)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(top), "max-ms")
	b.ReportMetric(watchers, "watchers")
}

// BenchmarkOneWriteLongPoll1000: 1,000 long polls wait on one service; one
// write answers them all. Reported: p50, p99 and max from the write call
// to each answer, and the memory per idle watcher (heap of the whole
// process, client and server and etcd, divided by the watchers).
func BenchmarkOneWriteLongPoll1000(b *testing.B) {
	store, hs, reg := benchAPI(b)
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	if _, err := store.PutService(ctx, "payments", json.RawMessage(`{"n": 0}`), 0, meta()); err != nil {
		b.Fatal(err)
	}
	const watchers = 1000
	var all []time.Duration
	var heapPer float64
	for i := range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		wctx, wcancel := context.WithCancel(ctx)
		out := make(chan seen, watchers)
		var wg sync.WaitGroup
		after := uint64(i + 1)
		for w := range watchers {
			wg.Go(func() {
				req, err := http.NewRequestWithContext(wctx, "GET", fmt.Sprintf("%s/api/v1/services/payments?wait=60s&after=%d", hs.URL, after), nil)
				if err != nil {
					return
				}
				resp, err := benchClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				var v configclient.Version
				if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil {
					out <- seen{w, v.Version, time.Now()}
				}
			})
		}
		waitGauge(b, reg, watchers)
		runtime.GC()
		var idle runtime.MemStats
		runtime.ReadMemStats(&idle)
		heapPer = float64(int64(idle.HeapInuse)-int64(before.HeapInuse)) / watchers
		b.StartTimer()
		start := time.Now()
		if _, err := store.PutService(ctx, "payments", json.RawMessage(fmt.Sprintf(`{"n": %d}`, i+1)), 0, meta()); err != nil {
			b.Fatal(err)
		}
		for range watchers {
			s := <-out
			all = append(all, s.at.Sub(start))
		}
		b.StopTimer()
		wcancel()
		wg.Wait()
		waitGauge(b, reg, 0)
	}
	p50, p99, top := percentiles(all)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(top), "max-ms")
	b.ReportMetric(heapPer/1024, "KiB/idle-watcher")
}

// waitGauge polls the admin's watcher gauge until it reads n.
func waitGauge(b *testing.B, reg *prometheus.Registry, n float64) {
	b.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		var got float64
		for _, mf := range mfs {
			if mf.GetName() == "switchback_service_config_watchers" {
				for _, m := range mf.GetMetric() {
					got += m.GetGauge().GetValue()
				}
			}
		}
		if got == n {
			return
		}
	}
	b.Fatalf("watchers gauge never reached %v", n)
}

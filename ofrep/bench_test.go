package ofrep

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// benchConfig has n flags at assorted percentages.
func benchConfig(n int) []string {
	flags := make([]string, n)
	for i := range flags {
		flags[i] = fmt.Sprintf("flag_%02d", i)
	}
	return flags
}

func benchHarness(b *testing.B, flags int) (*harness, []string) {
	names := benchConfig(flags)
	pct := map[string]float64{}
	for i, f := range names {
		pct[f] = float64(i*10%101) + 0.5
	}
	return newHarness(b, Options{}, config("checkout", 1, pct)), names
}

// discard is a ResponseWriter that keeps nothing, so the handler benchmarks
// measure the handler.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(status int)      { d.status = status }

// serveLoop runs the handler directly on one request per op, with the
// subject changing every op as in real traffic.
func serveLoop(b *testing.B, srv *Server, path string) {
	bodies := make([][]byte, 1024)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`{"context":{"targetingKey":"user-%d","plan":"pro"}}`, i))
	}
	rd := bytes.NewReader(nil)
	req := httptest.NewRequest(http.MethodPost, path, rd)
	req.RemoteAddr = "127.0.0.1:5000"
	req.Host = "127.0.0.1:8016"
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rd.Reset(bodies[i&1023])
		req.Body = io.NopCloser(rd)
		clear(w.h)
		w.status = 0
		srv.ServeHTTP(w, req)
		i++
	}
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkHandler is one evaluation through the HTTP handler, without the
// network: single (server providers) and bulk of 10 flags (web providers).
func BenchmarkHandler(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		h, names := benchHarness(b, 10)
		serveLoop(b, h.srv, PathEvaluate+"/"+names[3])
	})
	b.Run("bulk=10", func(b *testing.B) {
		h, _ := benchHarness(b, 10)
		serveLoop(b, h.srv, PathEvaluate)
	})
}

// BenchmarkHTTP is the same over real HTTP/1.1 on 127.0.0.1 with
// keep-alive clients in parallel (GOMAXPROCS × 4 of them): the load a
// service's OFREP providers put on the listener. req/s is the throughput
// of the whole machine, client included.
func BenchmarkHTTP(b *testing.B) {
	for _, tt := range []struct {
		name string
		path func([]string) string
	}{
		{"single", func(names []string) string { return PathEvaluate + "/" + names[3] }},
		{"bulk=10", func([]string) string { return PathEvaluate }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			h, names := benchHarness(b, 10)
			url := h.url + tt.path(names)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			b.Cleanup(client.CloseIdleConnections)
			var subjects atomic.Int64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := subjects.Add(1)
					resp, err := client.Post(url, "application/json",
						strings.NewReader(fmt.Sprintf(`{"context":{"targetingKey":"user-%d"}}`, n)))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(subjects.Load())/b.Elapsed().Seconds(), "req/s")
		})
	}
}

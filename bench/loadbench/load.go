package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one request, so a stuck target cannot hold a run
// past -duration-max by more than this.
const requestTimeout = 10 * time.Second

// userIDs numbers the X-User-ID of every request this process sends, so
// that no two requests share one and sticky routing sees a new user each
// time.
var userIDs atomic.Uint64

// loadClient sends load to one target over its own keep-alive connections,
// which stay open from one round to the next.
type loadClient struct {
	url       string
	client    *http.Client
	transport *http.Transport
}

func newLoadClient(url string, concurrency int) *loadClient {
	tr := &http.Transport{
		Proxy:               nil, // loopback only; never through an HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &loadClient{
		url:       url,
		transport: tr,
		client: &http.Client{
			Transport: tr,
			Timeout:   requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

func (c *loadClient) close() { c.transport.CloseIdleConnections() }

// loadResult is what one load run saw.
type loadResult struct {
	done      int // requests answered or failed; not those cut off by ctx
	failed    int
	firstErr  error
	elapsed   time.Duration
	latencies []time.Duration // of every done request, sorted
}

// load sends n requests from concurrency workers and waits for them all.
// It stops early, with fewer done, when ctx is done.
func (c *loadClient) load(ctx context.Context, n, concurrency int) loadResult {
	var (
		claimed atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex // guards res while workers merge into it
		res     = loadResult{latencies: make([]time.Duration, 0, n)}
	)
	start := time.Now()
	for range min(concurrency, n) {
		wg.Go(func() {
			lat := make([]time.Duration, 0, n/concurrency+1)
			failed := 0
			var firstErr error
			for claimed.Add(1) <= int64(n) && ctx.Err() == nil {
				d, err := c.do(ctx)
				if err != nil && ctx.Err() != nil {
					break // cut off, not failed
				}
				lat = append(lat, d)
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			res.failed += failed
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.done = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// do sends one request and reads the whole answer, so that the connection
// can be reused; anything but a 200 from the backend is a failure.
func (c *loadClient) do(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, err
	}
	req.Header["X-User-Id"] = []string{"u" + strconv.FormatUint(userIDs.Add(1), 10)}
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return time.Since(start), err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	switch {
	case err != nil:
		return d, fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return d, fmt.Errorf("status %s", resp.Status)
	case resp.Header.Get("X-Backend-Pool") == "":
		return d, fmt.Errorf("answer has no X-Backend-Pool header, so it did not come from the backend")
	}
	return d, nil
}

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method, or 0 for no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

package testharness

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8e2c47e/switchback/examples/backend"
)

// trafficLimit bounds any test's traffic, whatever the test forgets.
const trafficLimit = time.Minute

// trafficWorkers is how many requests may be in flight at once: enough to
// hold the rate while a loaded machine (-race, other tests) answers slowly,
// few enough to stay a test's load.
const trafficWorkers = 8

// Traffic sends GET / to a set of base URLs in turn, at about a fixed rate
// in total, each request as one of 10,000 rotating users (X-User-ID), and
// counts what fails. It is meant for loopback gateways only.
type Traffic struct {
	// Sent counts the requests sent; Failed those that got no answer or a
	// 5xx one.
	Sent, Failed atomic.Int64

	observe  func(Response)
	firstErr atomic.Pointer[string]
	stop     chan struct{}
	once     sync.Once
	done     sync.WaitGroup // the pacer and the workers
}

// Response is one request's outcome, for StartTrafficObserved.
type Response struct {
	At     time.Time // when the answer, or the failure, came
	Pool   string    // the answer's X-Backend-Pool: which backend answered
	Status int       // 0 when no answer came
	Err    error     // no answer, or a 5xx one
}

// StartTraffic sends about rps requests a second to bases until Stop, the
// end of the test, or a minute, whichever comes first. Requests start on
// the clock, not when the previous one is answered, so a slow answer does
// not slow the rate, up to 8 requests in flight; beyond that, ticks are
// skipped.
func StartTraffic(t testing.TB, rps int, bases ...string) *Traffic {
	t.Helper()
	return StartTrafficObserved(t, rps, nil, bases...)
}

// StartTrafficObserved is StartTraffic calling observe, when it is not
// nil, with every request's outcome, from the goroutines that send them.
func StartTrafficObserved(t testing.TB, rps int, observe func(Response), bases ...string) *Traffic {
	t.Helper()
	if rps <= 0 || len(bases) == 0 {
		t.Fatalf("StartTraffic(%d req/s, %d bases): want a positive rate and at least one base", rps, len(bases))
	}
	tr := &Traffic{stop: make(chan struct{}), observe: observe}
	ctx, cancel := context.WithTimeout(context.Background(), trafficLimit)
	// A tick waits in the channel only while every worker is busy and
	// the buffer has room, so short stalls are absorbed, long ones skipped.
	ticks := make(chan int, trafficWorkers)
	tr.done.Add(1)
	go func() {
		defer tr.done.Done()
		defer close(ticks)
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case ticks <- i:
			default: // every worker is busy
			}
		}
	}()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: trafficWorkers}}
	var workers sync.WaitGroup
	for range trafficWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range ticks {
				tr.send(ctx, c, bases[i%len(bases)], fmt.Sprintf("user-%d", i%10000))
			}
		}()
	}
	tr.done.Add(1)
	go func() {
		defer tr.done.Done()
		workers.Wait()
		cancel()
		c.CloseIdleConnections()
	}()
	t.Cleanup(tr.Stop)
	return tr
}

func (tr *Traffic) send(ctx context.Context, c *http.Client, base, user string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
	req.Header.Set("X-User-ID", user)
	resp, err := c.Do(req)
	tr.Sent.Add(1)
	res := Response{Err: err}
	if err == nil {
		resp.Body.Close()
		res.Pool, res.Status = resp.Header.Get(backend.HeaderBackendPool), resp.StatusCode
		if resp.StatusCode >= 500 {
			res.Err = fmt.Errorf("%s: status %d", base, resp.StatusCode)
		}
	}
	res.At = time.Now()
	if res.Err != nil {
		tr.Failed.Add(1)
		msg := res.Err.Error()
		tr.firstErr.CompareAndSwap(nil, &msg)
	}
	if tr.observe != nil {
		tr.observe(res)
	}
}

// Stop ends the traffic and waits for the last request.
func (tr *Traffic) Stop() {
	tr.once.Do(func() { close(tr.stop) })
	tr.done.Wait()
}

// FirstError describes the first failed request, or is "" when none
// failed.
func (tr *Traffic) FirstError() string {
	if p := tr.firstErr.Load(); p != nil {
		return *p
	}
	return ""
}

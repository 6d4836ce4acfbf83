package testharness

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// trafficLimit bounds any test's traffic, whatever the test forgets.
const trafficLimit = time.Minute

// Traffic sends GET / to a set of base URLs in turn, at about a fixed rate
// in total, each request as one of 10,000 rotating users (X-User-ID), and
// counts what fails. It is meant for loopback gateways only.
type Traffic struct {
	// Sent counts the requests sent; Failed those that got no answer or a
	// 5xx one.
	Sent, Failed atomic.Int64

	firstErr atomic.Pointer[string]
	stop     chan struct{}
	once     sync.Once
	done     sync.WaitGroup
}

// StartTraffic sends about rps requests a second to bases until Stop, the
// end of the test, or a minute, whichever comes first.
func StartTraffic(t testing.TB, rps int, bases ...string) *Traffic {
	t.Helper()
	if rps <= 0 || len(bases) == 0 {
		t.Fatalf("StartTraffic(%d req/s, %d bases): want a positive rate and at least one base", rps, len(bases))
	}
	tr := &Traffic{stop: make(chan struct{})}
	tr.done.Add(1)
	go func() {
		defer tr.done.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), trafficLimit)
		defer cancel()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			base := bases[i%len(bases)]
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
			req.Header.Set("X-User-ID", fmt.Sprintf("user-%d", i%10000))
			resp, err := c.Do(req)
			tr.Sent.Add(1)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					err = fmt.Errorf("%s: status %d", base, resp.StatusCode)
				}
			}
			if err != nil {
				tr.Failed.Add(1)
				msg := err.Error()
				tr.firstErr.CompareAndSwap(nil, &msg)
			}
		}
	}()
	t.Cleanup(tr.Stop)
	return tr
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

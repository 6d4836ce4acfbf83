package guard

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// PoolHealth is what active checks know of one pool.
type PoolHealth struct {
	// Healthy is true when every upstream answered the last check with a
	// 2xx or 3xx.
	Healthy bool `json:"healthy"`
	// Checked is when the last round of checks finished; zero before the
	// first.
	Checked time.Time `json:"checked,omitzero"`
	// LastHealthy is when the pool was last verified healthy.
	LastHealthy time.Time `json:"last_healthy,omitzero"`
	// Error describes the last failure, if the pool is unhealthy.
	Error string `json:"error,omitempty"`
}

// Checker probes every upstream of every pool on an interval. Run owns its
// goroutine; Set replaces what it checks.
type Checker struct {
	client *http.Client
	now    func() time.Time

	// mu protects targets, uri, interval, latency and state.
	mu       sync.Mutex
	targets  map[string][]string // pool -> upstream host:port
	uri      string
	interval time.Duration
	latency  time.Duration // slowest passing answer; 0: no bound
	state    map[string]PoolHealth
	changed  chan struct{} // wakes Run after Set
}

// NewChecker returns a checker with nothing to check.
func NewChecker(now func() time.Time) *Checker {
	return &Checker{
		client: &http.Client{
			Timeout: 2 * time.Second,
			// Probe the upstream itself: no proxy from the environment, and
			// a redirect is an answer, not somewhere else to check.
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:     now,
		state:   map[string]PoolHealth{},
		changed: make(chan struct{}, 1),
	}
}

// Set replaces the pools to check, the path and the interval; uri "" stops
// checking. State of pools that remain is kept.
func (c *Checker) Set(pools map[string][]string, uri string, interval time.Duration) {
	c.mu.Lock()
	c.targets, c.uri, c.interval = pools, uri, interval
	for p := range c.state {
		if _, ok := pools[p]; !ok || uri == "" {
			delete(c.state, p)
		}
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// SetLatency bounds how long a check may take to pass; 0 removes the
// bound. It applies from the next round.
func (c *Checker) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// Health returns a pool's state; ok is false when it is not checked.
func (c *Checker) Health(pool string) (PoolHealth, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.state[pool]
	return h, ok
}

// All returns every checked pool's state.
func (c *Checker) All() map[string]PoolHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]PoolHealth, len(c.state))
	for k, v := range c.state {
		out[k] = v
	}
	return out
}

// Run checks until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	for {
		c.mu.Lock()
		targets, uri, interval := c.targets, c.uri, c.interval
		c.mu.Unlock()
		if uri != "" {
			c.round(ctx, targets, uri)
		}
		if interval <= 0 {
			interval = time.Hour // idle until Set
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.changed:
			t.Stop()
		case <-t.C:
		}
	}
}

func (c *Checker) round(ctx context.Context, targets map[string][]string, uri string) {
	c.mu.Lock()
	bound := c.latency
	c.mu.Unlock()
	for pool, ups := range targets {
		var failure string
		for _, u := range ups {
			if err := c.probe(ctx, "http://"+strings.TrimPrefix(u, "http://")+uri, bound); err != "" {
				failure = u + ": " + err
				break
			}
		}
		now := c.now()
		c.mu.Lock()
		if _, still := c.targets[pool]; still && c.uri != "" {
			h := c.state[pool]
			h.Checked, h.Healthy, h.Error = now, failure == "", failure
			if h.Healthy {
				h.LastHealthy = now
			}
			c.state[pool] = h
		}
		c.mu.Unlock()
	}
}

// probe checks one upstream: an answer under 400, within bound when one
// is set. It returns why the check failed, or "".
func (c *Checker) probe(ctx context.Context, url string, bound time.Duration) string {
	start := c.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("User-Agent", "switchback-health")
	resp, err := c.client.Do(req)
	if err != nil {
		return err.Error()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.Status
	}
	if took := c.now().Sub(start); bound > 0 && took > bound {
		return fmt.Sprintf("answered in %v, slower than the %v bound (health_latency)", took.Round(time.Millisecond), bound)
	}
	return ""
}
